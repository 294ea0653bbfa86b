package procfs

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Prot holds a mapping's access bits. The values equal PROT_READ, PROT_WRITE
// and PROT_EXEC so a Prot can be passed to mmap/mprotect unchanged.
type Prot uint8

const (
	ProtRead  Prot = 0x1
	ProtWrite Prot = 0x2
	ProtExec  Prot = 0x4
)

func (p Prot) String() string {
	b := []byte("---")
	if p&ProtRead != 0 {
		b[0] = 'r'
	}
	if p&ProtWrite != 0 {
		b[1] = 'w'
	}
	if p&ProtExec != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// Kind classifies a mapping by its pathname column, because the special
// kernel-provided areas each need their own treatment on restore.
type Kind uint8

const (
	// KindAnon is a mapping with no pathname, or a named anonymous mapping
	// ("[anon:name]", "[anon_shmem:name]"), whose name stays in Path.
	KindAnon Kind = iota
	// KindFile is a mapping whose pathname is absolute. Shared anonymous
	// memory, memfd and SysV shm also appear this way ("/dev/zero (deleted)",
	// "/memfd:x (deleted)", "/SYSV00000000 (deleted)") on device 00:01.
	KindFile
	KindHeap
	KindStack
	KindVdso
	KindVvar
	KindVvarVclock
	KindVsyscall
	// KindOther is any other pathname: unknown "[...]" areas such as
	// "[uprobes]", or pseudo-file names like "anon_inode:[io_uring]".
	KindOther
	// KindAIO is an AIO ring (io_setup(2)). Maps shows it as the deleted
	// file "/[aio]", which the parser cannot tell from a deleted file of
	// that name: a reader that can stat the mapping's map_files entry
	// (no file type) sets this kind, as it tells shared anonymous memory
	// from a deleted /dev/zero.
	KindAIO
)

func (k Kind) String() string {
	switch k {
	case KindAnon:
		return "anon"
	case KindFile:
		return "file"
	case KindHeap:
		return "heap"
	case KindStack:
		return "stack"
	case KindVdso:
		return "vdso"
	case KindVvar:
		return "vvar"
	case KindVvarVclock:
		return "vvar_vclock"
	case KindVsyscall:
		return "vsyscall"
	case KindOther:
		return "other"
	case KindAIO:
		return "aio"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Prot       Prot
	Shared     bool // 's' rather than 'p' in the fourth permission column
	Offset     uint64
	Dev        uint64 // unix.Mkdev(major, minor)
	Inode      uint64
	// Path is the pathname column without leading padding and without a
	// trailing " (deleted)". The kernel writes a newline in a file name as
	// "\012" and escapes nothing else, so Path is not always the exact name;
	// use /proc/PID/map_files to reach the file itself.
	Path    string
	Deleted bool
	Kind    Kind
}

// Size returns End-Start.
func (m *Mapping) Size() uint64 { return m.End - m.Start }

const deletedSuffix = " (deleted)"

// ReadMaps reads /proc/PID/maps.
func ReadMaps(pid int) ([]Mapping, error) {
	path := pidPath(pid, "maps")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := parseMaps(f)
	return ms, fileError(path, err)
}

// ParseMaps parses the contents of a /proc/PID/maps file.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	ms, err := parseMaps(r)
	if err != nil {
		return nil, fmt.Errorf("maps: %w", err)
	}
	return ms, nil
}

func parseMaps(r io.Reader) ([]Mapping, error) { return parseLines(r, parseMapsLine) }

// nextField splits off the first space-separated field of s.
func nextField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " ")
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// parseMapsLine parses "start-end perms offset maj:min inode   path". The
// path is everything after the padding that follows the inode, so names with
// spaces (even trailing ones) survive.
func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	rng, rest := nextField(line)
	perms, rest := nextField(rest)
	off, rest := nextField(rest)
	dev, rest := nextField(rest)
	ino, rest := nextField(rest)
	if ino == "" {
		return m, fmt.Errorf("%q: want at least 5 fields", line)
	}

	start, end, ok := strings.Cut(rng, "-")
	if !ok {
		return m, fmt.Errorf("address range %q: missing '-'", rng)
	}
	var err error
	if m.Start, err = parseUint(start, 16, 64); err != nil {
		return m, fmt.Errorf("start address: %w", err)
	}
	if m.End, err = parseUint(end, 16, 64); err != nil {
		return m, fmt.Errorf("end address: %w", err)
	}
	if m.End < m.Start {
		return m, fmt.Errorf("address range %q: end before start", rng)
	}
	if m.Prot, m.Shared, err = parsePerms(perms); err != nil {
		return m, err
	}
	if m.Offset, err = parseUint(off, 16, 64); err != nil {
		return m, fmt.Errorf("offset: %w", err)
	}
	if m.Dev, err = parseMajorMinor(dev, 16); err != nil {
		return m, fmt.Errorf("device: %w", err)
	}
	if m.Inode, err = parseUint(ino, 10, 64); err != nil {
		return m, fmt.Errorf("inode: %w", err)
	}
	m.Path = strings.TrimLeft(rest, " ")
	m.Kind = classifyPath(m.Path)
	if m.Kind == KindFile || m.Kind == KindOther && !strings.HasPrefix(m.Path, "[") {
		if p, ok := strings.CutSuffix(m.Path, deletedSuffix); ok {
			m.Path, m.Deleted = p, true
		}
	}
	return m, nil
}

func parsePerms(s string) (Prot, bool, error) {
	if len(s) != 4 {
		return 0, false, fmt.Errorf("permissions %q: want 4 characters", s)
	}
	var p Prot
	for i, want := range [3]byte{'r', 'w', 'x'} {
		switch s[i] {
		case want:
			p |= 1 << i
		case '-':
		default:
			return 0, false, fmt.Errorf("permissions %q: bad character %q", s, s[i])
		}
	}
	switch s[3] {
	case 's':
		return p, true, nil
	case 'p':
		return p, false, nil
	}
	return 0, false, fmt.Errorf("permissions %q: bad sharing flag %q", s, s[3])
}

func classifyPath(p string) Kind {
	switch p {
	case "":
		return KindAnon
	case "[heap]":
		return KindHeap
	case "[stack]":
		return KindStack
	case "[vdso]":
		return KindVdso
	case "[vvar]":
		return KindVvar
	case "[vvar_vclock]":
		return KindVvarVclock
	case "[vsyscall]":
		return KindVsyscall
	}
	switch {
	case p[0] == '/':
		return KindFile
	case strings.HasPrefix(p, "[anon:"), strings.HasPrefix(p, "[anon_shmem:"):
		return KindAnon
	}
	return KindOther
}

package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// SysVShm is one System V shared memory segment of /proc/sysvipc/shm.
type SysVShm struct {
	Key           int32
	ID            int
	Perms         uint32 // mode bits, SHM_DEST (01000) once removed
	Size          uint64
	Nattch        int
	UID, GID      uint32
	CreatorPID    int
	LastAttachPID int
}

// ReadSysVShm reads /proc/sysvipc/shm: the segments of this IPC namespace.
func ReadSysVShm() ([]SysVShm, error) {
	const path = "/proc/sysvipc/shm"
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSysVShm(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return s, nil
}

// ParseSysVShm parses /proc/sysvipc/shm: a header line naming the columns,
// then one line per segment.
func ParseSysVShm(b []byte) ([]SysVShm, error) {
	lines := bytes.Split(b, []byte{'\n'})
	if len(lines) == 0 {
		return nil, fmt.Errorf("sysvipc/shm: empty")
	}
	cols := strings.Fields(string(lines[0]))
	index := map[string]int{}
	for i, c := range cols {
		index[c] = i
	}
	for _, c := range []string{"key", "shmid", "perms", "size", "nattch", "uid", "gid", "cpid", "lpid"} {
		if _, ok := index[c]; !ok {
			return nil, fmt.Errorf("sysvipc/shm: no %q column in %q", c, lines[0])
		}
	}
	var out []SysVShm
	for n, line := range lines[1:] {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != len(cols) {
			return nil, fmt.Errorf("sysvipc/shm line %d: %d fields, want %d", n+2, len(f), len(cols))
		}
		get := func(col string, base, bits int) (uint64, error) {
			return parseUint(f[index[col]], base, bits)
		}
		var s SysVShm
		key, err := parseInt(f[index["key"]], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("sysvipc/shm line %d: key: %w", n+2, err)
		}
		s.Key = int32(key)
		for _, x := range []struct {
			col  string
			base int
			set  func(uint64)
		}{
			{"shmid", 10, func(v uint64) { s.ID = int(v) }},
			{"perms", 8, func(v uint64) { s.Perms = uint32(v) }},
			{"size", 10, func(v uint64) { s.Size = v }},
			{"nattch", 10, func(v uint64) { s.Nattch = int(v) }},
			{"uid", 10, func(v uint64) { s.UID = uint32(v) }},
			{"gid", 10, func(v uint64) { s.GID = uint32(v) }},
			{"cpid", 10, func(v uint64) { s.CreatorPID = int(v) }},
			{"lpid", 10, func(v uint64) { s.LastAttachPID = int(v) }},
		} {
			v, err := get(x.col, x.base, 64)
			if err != nil {
				return nil, fmt.Errorf("sysvipc/shm line %d: %s: %w", n+2, x.col, err)
			}
			x.set(v)
		}
		out = append(out, s)
	}
	return out, nil
}

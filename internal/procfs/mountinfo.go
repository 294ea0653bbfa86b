package procfs

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (see proc(5)). String fields have
// the kernel's octal escapes (\040 for space and so on) decoded.
type Mount struct {
	ID           int
	ParentID     int
	Dev          uint64 // unix.Mkdev(major, minor)
	Root         string // path of the mount's root within its filesystem
	MountPoint   string // relative to the reading process's root
	Options      string // per-mount options
	Optional     []string
	FSType       string
	Source       string
	SuperOptions string
}

// ReadMountinfo reads /proc/PID/mountinfo, which lists the mounts of pid's
// mount namespace as seen from pid's root.
func ReadMountinfo(pid int) ([]Mount, error) {
	path := pidPath(pid, "mountinfo")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := parseMountinfo(f)
	if err != nil {
		return nil, fileError(path, err)
	}
	return ms, nil
}

// ParseMountinfo parses the contents of a mountinfo file.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	ms, err := parseMountinfo(r)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return ms, nil
}

// FindMount returns the mount with the given ID, such as an fdinfo mnt_id.
func FindMount(mounts []Mount, id int) (Mount, bool) {
	for _, m := range mounts {
		if m.ID == id {
			return m, true
		}
	}
	return Mount{}, false
}

func parseMountinfo(r io.Reader) ([]Mount, error) { return parseLines(r, parseMountinfoLine) }

func parseMountinfoLine(line string) (Mount, error) {
	var m Mount
	// Escaping guarantees no field contains a space, so splitting is exact.
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) != sep+4 {
		return m, fmt.Errorf("%q: want id parent dev root mountpoint options [optional...] - fstype source superoptions", line)
	}
	id, err := parseInt(f[0], 10, 32)
	if err != nil {
		return m, fmt.Errorf("field 1 (mount ID): %w", err)
	}
	parent, err := parseInt(f[1], 10, 32)
	if err != nil {
		return m, fmt.Errorf("field 2 (parent ID): %w", err)
	}
	m.ID, m.ParentID = int(id), int(parent)
	if m.Dev, err = parseMajorMinor(f[2], 10); err != nil {
		return m, fmt.Errorf("field 3 (major:minor): %w", err)
	}
	for _, d := range []struct {
		dst  *string
		src  string
		name string
	}{
		{&m.Root, f[3], "field 4 (root)"},
		{&m.MountPoint, f[4], "field 5 (mount point)"},
		{&m.Options, f[5], "field 6 (mount options)"},
		{&m.FSType, f[sep+1], "filesystem type"},
		{&m.Source, f[sep+2], "mount source"},
		{&m.SuperOptions, f[sep+3], "super options"},
	} {
		if *d.dst, err = unescapeOctal(d.src); err != nil {
			return m, fmt.Errorf("%s: %w", d.name, err)
		}
	}
	for _, o := range f[6:sep] {
		v, err := unescapeOctal(o)
		if err != nil {
			return m, fmt.Errorf("optional field: %w", err)
		}
		m.Optional = append(m.Optional, v)
	}
	return m, nil
}

// unescapeOctal decodes the \ooo escapes mountinfo uses for space, tab,
// newline and backslash.
func unescapeOctal(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if len(s)-i < 4 {
			return "", fmt.Errorf("%q: truncated escape", s)
		}
		v, err := parseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%q: bad escape: %w", s, err)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// Propagation is what a mount's optional fields say of its propagation
// (see mount_namespaces(7)): the peer group it shares events with, the
// one it receives them from, and whether it may be bind-mounted at all.
// A group id 0 is none; a mount with neither is private.
type Propagation struct {
	Shared int // shared:N, its peer group
	Master int // master:N, the peer group it is a slave of
	// PropagateFrom is the closest dominant peer group of its master
	// that the reading process's namespace can see (propagate_from:N).
	PropagateFrom int
	Unbindable    bool
}

// Propagation parses the mount's optional fields. Fields it does not know
// are skipped, as proc(5) asks of readers.
func (m *Mount) Propagation() (Propagation, error) {
	var p Propagation
	for _, o := range m.Optional {
		tag, val, ok := strings.Cut(o, ":")
		var dst *int
		switch {
		case o == "unbindable":
			p.Unbindable = true
			continue
		case !ok:
			continue
		case tag == "shared":
			dst = &p.Shared
		case tag == "master":
			dst = &p.Master
		case tag == "propagate_from":
			dst = &p.PropagateFrom
		default:
			continue
		}
		n, err := parseInt(val, 10, 32)
		if err != nil || n <= 0 {
			return Propagation{}, fmt.Errorf("mount %d: optional field %q: not a peer group", m.ID, o)
		}
		*dst = int(n)
	}
	return p, nil
}

package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// IDMap is one line of /proc/PID/uid_map or gid_map: Count ids from Inside
// in the process's user namespace are Outside and on in the reader's.
type IDMap struct {
	Inside, Outside, Count uint32
}

// ReadIDMaps reads /proc/PID/NAME, NAME uid_map or gid_map.
func ReadIDMaps(pid int, name string) ([]IDMap, error) {
	path := pidPath(pid, name)
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseIDMaps(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return m, nil
}

// maxIDMapLines is the most lines the kernel takes in one map.
const maxIDMapLines = 340

// ParseIDMaps parses a uid_map or gid_map: one range a line, three
// numbers; none (a namespace whose map is not written yet) is nil.
func ParseIDMaps(b []byte) ([]IDMap, error) {
	var out []IDMap
	for n, line := range bytes.Split(b, []byte{'\n'}) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: %d fields, want 3", n+1, len(f))
		}
		var v [3]uint32
		for i := range v {
			x, err := parseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			v[i] = uint32(x)
		}
		if v[2] == 0 || uint64(v[0])+uint64(v[2]) > 1<<32 || uint64(v[1])+uint64(v[2]) > 1<<32 {
			return nil, fmt.Errorf("line %d: %d ids from %d (%d outside) is not a range of ids", n+1, v[2], v[0], v[1])
		}
		if len(out) == maxIDMapLines {
			return nil, fmt.Errorf("more than %d lines", maxIDMapLines)
		}
		out = append(out, IDMap{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return out, nil
}

// FormatIDMaps is what a write to uid_map or gid_map takes to set m: the
// whole map in one write.
func FormatIDMaps(m []IDMap) string {
	var b strings.Builder
	for _, l := range m {
		fmt.Fprintf(&b, "%d %d %d\n", l.Inside, l.Outside, l.Count)
	}
	return b.String()
}

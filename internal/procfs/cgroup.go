package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Cgroup is one line of /proc/PID/task/TID/cgroup: a hierarchy and the
// thread's cgroup in it.
type Cgroup struct {
	ID int // hierarchy id; 0 for the unified (v2) hierarchy
	// Controllers names the hierarchy: its controllers and name= option,
	// as in "cpu,cpuacct" or "name=systemd"; empty for the unified one.
	Controllers string
	Path        string // from the reader's cgroup namespace root
}

// ReadCgroups reads the cgroups of thread tid of process pid.
func ReadCgroups(pid, tid int) ([]Cgroup, error) {
	path := pidPath(pid, "task/"+strconv.Itoa(tid)+"/cgroup")
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	cgs, err := ParseCgroups(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return cgs, nil
}

// ParseCgroups parses the contents of a cgroup file: lines
// "ID:CONTROLLERS:PATH", where the path may itself hold colons.
func ParseCgroups(b []byte) ([]Cgroup, error) {
	return parseLines(bytes.NewReader(b), func(line string) (Cgroup, error) {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return Cgroup{}, fmt.Errorf("%q: want ID:CONTROLLERS:PATH", line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil || id < 0 {
			return Cgroup{}, fmt.Errorf("%q: hierarchy id %q", line, f[0])
		}
		if !strings.HasPrefix(f[2], "/") {
			return Cgroup{}, fmt.Errorf("%q: path %q is not absolute", line, f[2])
		}
		return Cgroup{ID: id, Controllers: f[1], Path: f[2]}, nil
	})
}

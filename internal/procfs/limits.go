package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Limit is one line of /proc/PID/limits.
type Limit struct {
	Resource int // RLIMIT_* number
	Cur, Max uint64
}

// limitNames are the first column of /proc/PID/limits, by RLIMIT_* number.
var limitNames = []string{
	"Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
	"Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
	"Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority", "Max realtime priority",
	"Max realtime timeout",
}

// ReadLimits reads /proc/PID/limits: unlike prlimit(2), readable for a
// process of another user without CAP_SYS_RESOURCE.
func ReadLimits(pid int) ([]Limit, error) {
	b, err := readProcFile(pidPath(pid, "limits"))
	if err != nil {
		return nil, err
	}
	l, err := ParseLimits(b)
	if err != nil {
		return nil, fileError(pidPath(pid, "limits"), err)
	}
	return l, nil
}

// ParseLimits parses the contents of /proc/PID/limits.
func ParseLimits(b []byte) ([]Limit, error) {
	var out []Limit
	s := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if n == 1 || strings.TrimSpace(line) == "" {
			continue // the header line
		}
		res := -1
		for i, name := range limitNames {
			if strings.HasPrefix(line, name+" ") {
				res = i
				break
			}
		}
		if res < 0 {
			continue // a limit this version does not know
		}
		f := strings.Fields(line[len(limitNames[res]):])
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: %q: want soft and hard limits", n, line)
		}
		cur, err1 := parseLimit(f[0])
		max, err2 := parseLimit(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: %q: bad limit", n, line)
		}
		out = append(out, Limit{Resource: res, Cur: cur, Max: max})
	}
	return out, s.Err()
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

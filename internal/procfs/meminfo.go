package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MemAvailable reads MemAvailable from /proc/meminfo: the kernel's
// estimate of how much memory can be allocated without swapping, in bytes.
func MemAvailable() (int64, error) {
	path := procRoot + "/meminfo"
	b, err := readProcFile(path)
	if err != nil {
		return 0, err
	}
	n, err := ParseMemAvailable(b)
	if err != nil {
		return 0, fileError(path, err)
	}
	return n, nil
}

// ParseMemAvailable parses the MemAvailable line of a meminfo file
// ("MemAvailable:   22278072 kB").
func ParseMemAvailable(b []byte) (int64, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(rest))
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("MemAvailable: %q is not a number of kB", bytes.TrimSpace(rest))
		}
		kb, err := parseUint(fields[0], 10, 53)
		if err != nil {
			return 0, fmt.Errorf("MemAvailable: %w", err)
		}
		return int64(kb) << 10, nil
	}
	return 0, errors.New("no MemAvailable line")
}

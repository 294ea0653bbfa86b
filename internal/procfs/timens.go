package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// TimensOffsets are the clock offsets of a process's time namespace for
// its children (/proc/PID/timens_offsets), in nanoseconds.
type TimensOffsets struct {
	Monotonic, Boottime int64
}

// ReadTimensOffsets reads /proc/PID/timens_offsets.
func ReadTimensOffsets(pid int) (TimensOffsets, error) {
	path := pidPath(pid, "timens_offsets")
	b, err := readProcFile(path)
	if err != nil {
		return TimensOffsets{}, err
	}
	o, err := ParseTimensOffsets(b)
	if err != nil {
		return TimensOffsets{}, fileError(path, err)
	}
	return o, nil
}

// ParseTimensOffsets parses a timens_offsets file: one line per clock, its
// name (or clock id), seconds and nanoseconds. Both clocks must be there.
func ParseTimensOffsets(b []byte) (TimensOffsets, error) {
	var o TimensOffsets
	seen := map[string]bool{}
	for n, line := range bytes.Split(b, []byte{'\n'}) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return o, fmt.Errorf("line %d: %d fields, want 3", n+1, len(f))
		}
		secs, err := parseInt(f[1], 10, 64)
		if err != nil {
			return o, fmt.Errorf("line %d: seconds: %w", n+1, err)
		}
		nsecs, err := parseInt(f[2], 10, 64)
		if err != nil || nsecs < 0 || nsecs >= 1e9 {
			return o, fmt.Errorf("line %d: nanoseconds %q", n+1, f[2])
		}
		const maxSecs = int64(1<<63-1)/1e9 - 1
		if secs > maxSecs || secs < -maxSecs {
			return o, fmt.Errorf("line %d: %d seconds is out of range", n+1, secs)
		}
		v := secs*1e9 + nsecs
		var clock string
		switch f[0] {
		case "monotonic", "1":
			clock, o.Monotonic = "monotonic", v
		case "boottime", "7":
			clock, o.Boottime = "boottime", v
		default:
			return o, fmt.Errorf("line %d: unknown clock %q", n+1, f[0])
		}
		if seen[clock] {
			return o, fmt.Errorf("line %d: clock %s twice", n+1, clock)
		}
		seen[clock] = true
	}
	if len(seen) != 2 {
		return o, fmt.Errorf("%d clocks, want monotonic and boottime", len(seen))
	}
	return o, nil
}

// FormatTimensOffsets is what a write to timens_offsets takes to set o.
func FormatTimensOffsets(o TimensOffsets) string {
	line := func(name string, ns int64) string {
		secs, nsecs := ns/1e9, ns%1e9
		if nsecs < 0 {
			secs, nsecs = secs-1, nsecs+1e9
		}
		return fmt.Sprintf("%s %d %d\n", name, secs, nsecs)
	}
	return line("monotonic", o.Monotonic) + line("boottime", o.Boottime)
}

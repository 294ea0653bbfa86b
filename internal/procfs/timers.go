package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// PosixTimer is one timer_create(2) timer from /proc/PID/timers. The file
// shows how the timer notifies but not its current setting; that needs
// timer_gettime in the target.
type PosixTimer struct {
	ID         int
	Signal     int    // sigev_signo
	SigevValue uint64 // sigev_value, as a pointer-sized integer
	// Notify is the delivery method without the thread-id bit: "signal",
	// "none" or "thread". NotifyTID reports SIGEV_THREAD_ID, in which case
	// NotifyPID is the tid that gets the signal.
	Notify    string
	NotifyTID bool
	NotifyPID int
	ClockID   int // negative for CPU-time clocks of a pid/tid
}

// ReadTimers reads /proc/PID/timers.
func ReadTimers(pid int) ([]PosixTimer, error) {
	path := pidPath(pid, "timers")
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	ts, err := parseTimers(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return ts, nil
}

// ParseTimers parses a /proc/PID/timers file: blocks of "ID:", "signal:",
// "notify:" and "ClockID:" lines.
func ParseTimers(b []byte) ([]PosixTimer, error) {
	ts, err := parseTimers(b)
	if err != nil {
		return nil, fmt.Errorf("timers: %w", err)
	}
	return ts, nil
}

func parseTimers(b []byte) ([]PosixTimer, error) {
	var out []PosixTimer
	// step is the index of the next expected key within a block.
	keys := [4]string{"ID", "signal", "notify", "ClockID"}
	step := 0
	for n, raw := range bytes.Split(b, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		key, val, ok := strings.Cut(string(raw), ":")
		if !ok || key != keys[step] {
			return nil, fmt.Errorf("line %d: %q: want %s:", n+1, raw, keys[step])
		}
		val = strings.TrimSpace(val)
		if step == 0 {
			out = append(out, PosixTimer{})
		}
		t := &out[len(out)-1]
		if err := t.set(key, val); err != nil {
			return nil, fmt.Errorf("line %d: field %s: %w", n+1, key, err)
		}
		step = (step + 1) % len(keys)
	}
	if step != 0 {
		return nil, fmt.Errorf("timer %d: truncated, no %s line", len(out), keys[step])
	}
	return out, nil
}

func (t *PosixTimer) set(key, val string) error {
	switch key {
	case "ID":
		v, err := parseInt(val, 10, 32)
		t.ID = int(v)
		return err
	case "signal":
		// "%d/%px": signal number and sigev_value.
		sig, ptr, ok := strings.Cut(val, "/")
		if !ok {
			return fmt.Errorf("%q: want signo/value", val)
		}
		v, err := parseInt(sig, 10, 32)
		if err != nil {
			return err
		}
		t.Signal = int(v)
		t.SigevValue, err = parseUint(ptr, 16, 64)
		return err
	case "notify":
		// "%s/%s.%d": method, "pid" or "tid", and the target.
		method, target, ok := strings.Cut(val, "/")
		who, id, ok2 := strings.Cut(target, ".")
		if !ok || !ok2 || method == "" || (who != "pid" && who != "tid") {
			return fmt.Errorf("%q: want method/pid.N or method/tid.N", val)
		}
		v, err := parseInt(id, 10, 32)
		if err != nil {
			return err
		}
		t.Notify, t.NotifyTID, t.NotifyPID = method, who == "tid", int(v)
	case "ClockID":
		v, err := parseInt(val, 10, 32)
		t.ClockID = int(v)
		return err
	}
	return nil
}

package preserve

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// EnvVar names the environment variable that carries the marked fds across
// exec, as a comma-separated list of decimal fd numbers.
const EnvVar = "CRSUB_PRESERVE_FDS"

// Environ returns "CRSUB_PRESERVE_FDS=3,7" for the honored marks (with an
// empty list when there are none, so that a stale inherited value is
// overridden) and clears FD_CLOEXEC on those fds so that they survive exec.
// The marks themselves are process-local and vanish with exec; the receiver
// restores them with [FromEnviron].
//
// execve in place (syscall.Exec) keeps every fd at its number. os/exec forks
// first, and Go's child may dup3 its internal error pipe onto the number just
// above the highest fd in Cmd.Stdin/Stdout/Stderr/ExtraFiles, clobbering an
// inherited fd there; with os/exec either keep the marked fds below the stdio
// fds you pass or pass each marked fd in Cmd.ExtraFiles at index fd-3.
func Environ() (string, error) {
	fds := List()
	for _, fd := range fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC)
		}
		if err != nil {
			return "", fmt.Errorf("fd %d: clearing FD_CLOEXEC: %w", fd, err)
		}
	}
	return EnvVar + "=" + formatFDs(fds), nil
}

// FromEnviron reads CRSUB_PRESERVE_FDS from environ (in os.Environ form),
// checks that every listed fd is open in this process, and marks them all;
// it marks nothing if any check fails. It returns the fds it marked, or nil
// when the variable is absent or empty. A variable given twice with different
// values is an error rather than a guess at which one the sender meant.
// FromEnviron leaves the fds' FD_CLOEXEC alone (Environ cleared it): the
// receiver decides, usually from the checkpoint image, whether they should
// be close-on-exec.
func FromEnviron(environ []string) ([]int, error) {
	prefix := EnvVar + "="
	val, found := "", false
	for _, kv := range environ {
		v, ok := strings.CutPrefix(kv, prefix)
		if !ok {
			continue
		}
		if found && v != val {
			return nil, fmt.Errorf("%s given twice, %q and %q", EnvVar, val, v)
		}
		val, found = v, true
	}
	fds, err := parseFDs(val)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvVar, val, err)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("%s=%s: fd %d is not open: %w", EnvVar, val, fd, err)
		}
	}
	var marked []int
	for _, fd := range fds {
		was := IsSet(fd)
		if err := Set(fd); err != nil {
			for _, m := range marked {
				Clear(m)
			}
			return nil, fmt.Errorf("%s=%s: %w", EnvVar, val, err)
		}
		if !was {
			marked = append(marked, fd)
		}
	}
	return fds, nil
}

// parseFDs parses a comma-separated list of distinct decimal fd numbers.
// Only plain digits are accepted: a sign, space or empty item means the value
// was built wrongly, and guessing would mark the wrong file.
func parseFDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var fds []int
	seen := make(map[int]bool)
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return nil, fmt.Errorf("empty item")
		}
		if strings.Trim(item, "0123456789") != "" {
			return nil, fmt.Errorf("%q is not a decimal fd number", item)
		}
		n, err := strconv.ParseInt(item, 10, 32)
		if err != nil || n > math.MaxInt32 {
			return nil, fmt.Errorf("fd %q out of range", item)
		}
		fd := int(n)
		if seen[fd] {
			return nil, fmt.Errorf("fd %d listed twice", fd)
		}
		seen[fd] = true
		fds = append(fds, fd)
	}
	return fds, nil
}

func formatFDs(fds []int) string {
	parts := make([]string, len(fds))
	for i, fd := range fds {
		parts[i] = strconv.Itoa(fd)
	}
	return strings.Join(parts, ",")
}

package substitute

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SpecError reports a spec (or hand-built [Source]) that cannot be used.
type SpecError struct {
	Spec   string // the spec as given, or Source.String() for a hand-built Source
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("substitute %q: %s", e.Spec, e.Reason)
}

// OpenError reports a source that failed to open or to be placed. Err is the
// cause; errors.Is sees through it to errnos such as unix.EADDRINUSE.
type OpenError struct {
	Target int    // the fd Install was filling, or -1 from Source.Open (its caller names the fd)
	Spec   string // Source.String()
	Err    error
}

func (e *OpenError) Error() string {
	if e.Target >= 0 {
		return fmt.Sprintf("fd %d: substitute %s: %v", e.Target, e.Spec, e.Err)
	}
	return fmt.Sprintf("substitute %s: %v", e.Spec, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// AccessError reports a substitute whose access mode cannot serve the fd it
// replaces: a program that reads a read-write fd breaks when it gets a
// write-only one (CRIU #1794), so this fails instead of narrowing silently.
// It arrives wrapped in an *OpenError; use errors.As.
type AccessError struct {
	Have int // what the substitute gives: unix.O_RDONLY, O_WRONLY or O_RDWR
	Need int // what the checkpointed fd had, or the spec's explicit ro/wo/rw
	what string
	hint string
}

func (e *AccessError) Error() string {
	msg := fmt.Sprintf("%s is %s but %s is needed", e.what, accessName(e.Have), accessName(e.Need))
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	return msg
}

func accessName(acc int) string {
	switch acc {
	case unix.O_RDONLY:
		return "read-only"
	case unix.O_WRONLY:
		return "write-only"
	case unix.O_RDWR:
		return "read-write"
	}
	return fmt.Sprintf("access mode %d", acc)
}

// serves reports whether an fd opened with access have can do what need asks.
func serves(have, need int) bool {
	return have == need || have == unix.O_RDWR
}

package imagefilter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Action is what a rule does to its fd.
type Action int

const (
	// Drop removes the fd: the restarted process does not have it.
	Drop Action = iota + 1
	// Replace keeps the fd but marks its file as supplied at restart, so
	// the image no longer holds the file's contents or what it depended on.
	Replace
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Replace:
		return "replace"
	}
	return fmt.Sprintf("action-%d", int(a))
}

// Rule names one fd and what to do with it.
type Rule struct {
	Pid    int // 0: the image's root process, the first in its task tree
	Fd     int
	Action Action
}

// String names the rule: "drop fd 7", "replace fd 1 of pid 1234".
func (r Rule) String() string {
	if r.Pid == 0 {
		return fmt.Sprintf("%s fd %d", r.Action, r.Fd)
	}
	return fmt.Sprintf("%s fd %d of pid %d", r.Action, r.Fd, r.Pid)
}

// ParseRule parses "FD" (an fd of the root process) or "PID:FD". Its errors
// say what is wrong with s, not which option gave it.
func ParseRule(s string, action Action) (Rule, error) {
	if action != Drop && action != Replace {
		return Rule{}, fmt.Errorf("unknown action %d", int(action))
	}
	r := Rule{Action: action}
	pidText, fdText, hasPid := strings.Cut(s, ":")
	if !hasPid {
		fdText = pidText
	} else {
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			return Rule{}, fmt.Errorf("%q is not a pid (want FD or PID:FD)", pidText)
		}
		r.Pid = pid
	}
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 0 {
		return Rule{}, fmt.Errorf("%q is not an fd number (want FD or PID:FD)", fdText)
	}
	r.Fd = fd
	return r, nil
}

// ErrNoMatch is wrapped by a RuleError for a rule that matches no fd of the
// image.
var ErrNoMatch = errors.New("matches no fd")

// ErrShared is wrapped by a RuleError for a rule on an fd whose open file is
// shared with an fd that no rule covers: the file cannot be both kept and
// removed.
var ErrShared = errors.New("open file shared with an fd without a rule")

// RuleError is a rule the image does not allow.
type RuleError struct {
	Rule Rule
	Pid  int   // the pid the rule applies to: Rule.Pid, or the root's; 0 if unknown
	Err  error // wraps ErrNoMatch or ErrShared, or says what else is wrong
}

func (e *RuleError) Error() string {
	r := e.Rule
	if r.Pid == 0 {
		r.Pid = e.Pid
	}
	return fmt.Sprintf("rule %s: %v", r, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// detailError carries a message for a sentinel so that errors.Is works and
// the message reads naturally.
type detailError struct {
	msg      string
	sentinel error
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.sentinel }

// fdRef is one fd of one process.
type fdRef struct{ pid, fd int }

// describeOthers names fds for a message about fd (of pid): "fd 2", "fds 2
// and 5", "fd 2 of pid 43".
func describeOthers(pid int, others []fdRef) (names string, plural bool) {
	parts := make([]string, len(others))
	for i, o := range others {
		parts[i] = strconv.Itoa(o.fd)
		if o.pid != pid {
			parts[i] += " of pid " + strconv.Itoa(o.pid)
		}
	}
	switch len(parts) {
	case 0:
		return "", false
	case 1:
		return "fd " + parts[0], false
	}
	return "fds " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1], true
}

func sharedError(pid, fd int, others []fdRef) error {
	e := &SharedError{Pid: pid, Fd: fd}
	for _, o := range others {
		e.Others = append(e.Others, ProcessFd{Pid: o.pid, Fd: o.fd})
	}
	return e
}

// ProcessFd is one fd of one process.
type ProcessFd struct{ Pid, Fd int }

// SharedError says which fds share the open file of a rule's fd and have
// no rule of their own. It wraps ErrShared. Its message is about the
// rule's fd, which the RuleError around it names.
type SharedError struct {
	Pid, Fd int
	Others  []ProcessFd
}

func (e *SharedError) Error() string {
	others := make([]fdRef, len(e.Others))
	for i, o := range e.Others {
		others[i] = fdRef{o.Pid, o.Fd}
	}
	names, plural := describeOthers(e.Pid, others)
	add := "a rule for " + names
	if plural {
		add = "rules for " + names
	}
	return fmt.Sprintf("its open file is shared with %s: add %s too", names, add)
}

func (e *SharedError) Unwrap() error { return ErrShared }

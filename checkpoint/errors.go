package checkpoint

import (
	"fmt"
	"syscall"

	"github.com/crsub/crsub/internal/files"
)

// NoProcessError is a checkpoint of a pid no process has. It is ESRCH
// (errors.Is(err, syscall.ESRCH)), which is how CRIU's RPC reports it.
type NoProcessError struct{ Pid int }

func (e *NoProcessError) Error() string { return fmt.Sprintf("no process has pid %d", e.Pid) }

func (e *NoProcessError) Unwrap() error { return syscall.ESRCH }

// ProcessError is a checkpoint that failed on one process of the tree.
type ProcessError struct {
	Pid int
	Err error
}

func (e *ProcessError) Error() string { return fmt.Sprintf("pid %d: %v", e.Pid, e.Err) }

func (e *ProcessError) Unwrap() error { return e.Err }

// FdError is a checkpoint that failed on one fd. It arrives inside the
// *ProcessError of its process, which names the pid.
type FdError struct {
	Pid, Fd int
	Kind    string // the kind that dumps the fd ("" if none claimed it), as restart names it
	Err     error
}

func (e *FdError) Error() string { return fmt.Sprintf("fd %d: %v", e.Fd, e.Err) }

func (e *FdError) Unwrap() error { return e.Err }

// UnsupportedError is an fd of a kind crsub cannot checkpoint yet: the
// checkpoint fails rather than silently dropping it. It arrives inside an
// *FdError.
type UnsupportedError = files.UnsupportedError

// TracedError is a thread another tracer (a debugger, strace) holds: a
// thread has one tracer, so the checkpoint cannot take it.
type TracedError struct {
	Tid, Tracer int
	TracerComm  string // "" if the tracer could not be read
	Err         error  // what PTRACE_SEIZE said
}

func (e *TracedError) Error() string {
	tracer := fmt.Sprint(e.Tracer)
	if e.TracerComm != "" {
		tracer += " (" + e.TracerComm + ")"
	}
	return fmt.Sprintf("thread %d is traced by pid %s, and a thread has one tracer: detach it first: %v", e.Tid, tracer, e.Err)
}

func (e *TracedError) Unwrap() error { return e.Err }

// LeaderGoneError is a process whose main thread has exited while its
// other threads run on (pthread_exit from main): /proc shows it as a
// zombie, and a thread group without its leader cannot be made again.
type LeaderGoneError struct {
	Pid     int
	Threads int // the threads that run on
}

func (e *LeaderGoneError) Error() string {
	return fmt.Sprintf("pid %d: its main thread has exited and %d other threads run on (pthread_exit from main): a thread group without its leader cannot be checkpointed", e.Pid, e.Threads)
}

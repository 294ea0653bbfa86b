package ptrace

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"

	"github.com/crsub/crsub/internal/sys"
)

// Regs is the general-purpose register set of NT_PRSTATUS on x86_64,
// including fs_base and gs_base (216 bytes).
type Regs = unix.PtraceRegs

// Option changes how Seize attaches.
type Option uint

const (
	// ExitKill makes the kernel kill the tracee if the tracing thread exits
	// (PTRACE_O_EXITKILL), for processes that are worthless unless finished,
	// such as restart stubs.
	ExitKill Option = 1 << iota
	// SuspendSeccomp disables the tracee's seccomp filters while it is traced
	// (PTRACE_O_SUSPEND_SECCOMP), so injected system calls are neither refused
	// nor turned into signals. Needs CAP_SYS_ADMIN and a tracer without
	// seccomp filters of its own.
	SuspendSeccomp
)

var (
	// ErrExited is matched (errors.Is) by every *ExitError.
	ErrExited = errors.New("tracee exited")
	// ErrWrongThread means a method was called from an OS thread other than
	// the one that seized the tracee; the kernel would answer ESRCH.
	ErrWrongThread = errors.New("ptrace request from a thread that is not the tracer")
)

// ExitError reports that the tracee exited or was killed while traced.
type ExitError struct {
	Tid    int
	Status unix.WaitStatus
}

func (e *ExitError) Error() string {
	if e.Status.Signaled() {
		return fmt.Sprintf("tracee %d killed by signal %v", e.Tid, e.Status.Signal())
	}
	return fmt.Sprintf("tracee %d exited with status %d", e.Tid, e.Status.ExitStatus())
}

// Is makes errors.Is(err, ErrExited) true for an *ExitError.
func (e *ExitError) Is(target error) bool { return target == ErrExited }

// UnexpectedStopError reports a stop that the current operation cannot
// account for.
type UnexpectedStopError struct {
	Tid    int
	Status unix.WaitStatus
}

func (e *UnexpectedStopError) Error() string {
	return fmt.Sprintf("tracee %d: unexpected stop, status %#x", e.Tid, uint32(e.Status))
}

// Tracee is one seized thread. Its methods must be called from the OS thread
// that called Seize.
type Tracee struct {
	Tid int

	tracer    int
	groupStop int
	options   int // PTRACE_O_* in effect
}

// Seize attaches to the thread tid with PTRACE_SEIZE (always with
// PTRACE_O_TRACESYSGOOD, so syscall stops are told apart from SIGTRAP) and
// stops it with PTRACE_INTERRUPT. It returns once the thread is in a
// ptrace stop. A signal that the thread dequeued before the interrupt took
// effect is delivered as the kernel intended (handler frame or default
// action) rather than swallowed: the thread then stops before running any
// of the handler, with its original siginfo intact, so nothing is lost and
// the stopped state is consistent. If the thread was, or becomes, stopped
// by job control, GroupStopSignal reports the stop signal.
func Seize(tid int, opts ...Option) (*Tracee, error) {
	options := unix.PTRACE_O_TRACESYSGOOD
	for _, o := range opts {
		if o&ExitKill != 0 {
			options |= unix.PTRACE_O_EXITKILL
		}
		if o&SuspendSeccomp != 0 {
			options |= unix.PTRACE_O_SUSPEND_SECCOMP
		}
	}
	t := &Tracee{Tid: tid, tracer: unix.Gettid(), options: options}
	if _, err := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)); err != nil {
		return nil, fmt.Errorf("seize thread %d: %w", tid, err)
	}
	if err := t.interrupt(); err != nil {
		t.abandon()
		return nil, fmt.Errorf("stop thread %d: %w", tid, err)
	}
	return t, nil
}

// abandonWait bounds how long abandon waits for the thread to stop.
const abandonWait = 100 * time.Millisecond

// abandon lets go of a thread Seize could not stop. PTRACE_DETACH works
// only on a stopped thread: one still running is interrupted once more
// and given a moment to stop. Left seized, it would stop at its next
// chance and stay stopped until the tracing thread exits; and any other
// checkpoint of it by this process would find it traced.
func (t *Tracee) abandon() {
	if _, err := ptrace(unix.PTRACE_DETACH, t.Tid, 0, 0); err == nil {
		return
	}
	if _, err := ptrace(unix.PTRACE_INTERRUPT, t.Tid, 0, 0); err != nil {
		return
	}
	ws, err := t.waitStop(abandonWait)
	if err != nil {
		return // gone, or not stopping: the kernel lets it go with the tracer
	}
	sig := 0
	if KindOf(ws) == SignalDeliveryStop {
		sig = int(ws.StopSignal()) // delivered, not lost
	}
	_, _ = ptrace(unix.PTRACE_DETACH, t.Tid, 0, uintptr(sig))
}

// ErrNotStopping is returned by Seize for a thread that does not stop
// within StopTimeout: one waiting for a vfork child to exec, or in an
// uninterruptible sleep. It stays seized until the tracing thread exits,
// which lets it go.
var ErrNotStopping = errors.New("thread does not stop (waiting for a vfork child, or in uninterruptible sleep)")

// StopTimeout bounds how long Seize waits for a thread to stop.
const StopTimeout = 2 * time.Second

// interrupt brings a seized, running thread into a ptrace stop.
func (t *Tracee) interrupt() error {
	if _, err := ptrace(unix.PTRACE_INTERRUPT, t.Tid, 0, 0); err != nil {
		return err
	}
	for first := true; ; first = false {
		var ws unix.WaitStatus
		var err error
		if first {
			ws, err = t.waitStop(StopTimeout)
		} else {
			ws, err = t.Wait()
		}
		if err != nil {
			return err
		}
		switch KindOf(ws) {
		case InterruptStop:
			return nil
		case GroupStop:
			t.groupStop = int(ws.StopSignal())
			return nil
		case SignalDeliveryStop:
			// Every ptrace stop clears a pending PTRACE_INTERRUPT, so it
			// is re-armed before the signal is let through; the thread
			// then traps right after the kernel has acted on the signal,
			// before returning to user mode.
			if _, err := ptrace(unix.PTRACE_INTERRUPT, t.Tid, 0, 0); err != nil {
				return err
			}
			if err := t.Cont(int(ws.StopSignal())); err != nil {
				return err
			}
		default:
			return &UnexpectedStopError{Tid: t.Tid, Status: ws}
		}
	}
}

// TraceClones turns PTRACE_O_TRACECLONE on or off: while on, a process or
// thread the tracee clones starts traced by this thread, stopped (see
// Adopt), and the clone reports an event stop between the call's entry
// and exit.
func (t *Tracee) TraceClones(on bool) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	options := t.options &^ unix.PTRACE_O_TRACECLONE
	if on {
		options |= unix.PTRACE_O_TRACECLONE
	}
	if _, err := ptrace(unix.PTRACE_SETOPTIONS, t.Tid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("set options of thread %d: %w", t.Tid, err)
	}
	t.options = options
	return nil
}

// Adopt takes over tid, a clone of a tracee made while TraceClones was on:
// it waits for its first stop and makes the kernel kill it if this tracing
// thread exits, so that it never runs untraced. On error the clone is
// killed and its death taken as its tracer's: a dead tracee is its
// tracer's to be told of before its parent can reap it, and a parent
// waiting for it would wait for as long as this thread lives.
func Adopt(tid int) (_ *Tracee, err error) {
	t := &Tracee{Tid: tid, tracer: unix.Gettid()}
	defer func() {
		if err != nil {
			_ = unix.Kill(tid, unix.SIGKILL)
			for {
				if _, werr := t.Wait(); werr != nil {
					break // its death, or ECHILD: not (or no longer) ours
				}
			}
		}
	}()
	ws, err := t.waitStop(StopTimeout)
	if err != nil {
		return nil, err
	}
	if k := KindOf(ws); k != InterruptStop && k != GroupStop {
		return nil, &UnexpectedStopError{Tid: tid, Status: ws}
	}
	t.options = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_EXITKILL
	if _, err := ptrace(unix.PTRACE_SETOPTIONS, tid, 0, uintptr(t.options)); err != nil {
		return nil, fmt.Errorf("set options of thread %d: %w", tid, err)
	}
	return t, nil
}

// GroupStopSignal returns the signal of the job-control stop (SIGSTOP,
// SIGTSTP, SIGTTIN, SIGTTOU) the thread was in when Seize returned, or 0 if
// it was running. After Detach such a thread stays stopped.
func (t *Tracee) GroupStopSignal() int { return t.groupStop }

// Detach lets the thread go (PTRACE_DETACH). The thread must be in a ptrace
// stop. An interrupted system call whose registers are as the kernel left
// them is restarted by the kernel's usual logic.
func (t *Tracee) Detach() error { return t.DetachSignal(0) }

// DetachSignal lets the thread go, delivering sig if it is nonzero and the
// thread is in a signal-delivery stop.
func (t *Tracee) DetachSignal(sig int) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	if _, err := ptrace(unix.PTRACE_DETACH, t.Tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("detach thread %d: %w", t.Tid, err)
	}
	return nil
}

// Cont resumes the thread (PTRACE_CONT), delivering sig if it is nonzero and
// the thread is in a signal-delivery stop.
func (t *Tracee) Cont(sig int) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	if _, err := ptrace(unix.PTRACE_CONT, t.Tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("continue thread %d: %w", t.Tid, err)
	}
	return nil
}

// Syscall resumes the thread until its next syscall entry or exit
// (PTRACE_SYSCALL), delivering sig as Cont does.
func (t *Tracee) Syscall(sig int) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	if _, err := ptrace(unix.PTRACE_SYSCALL, t.Tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("resume thread %d to next syscall stop: %w", t.Tid, err)
	}
	return nil
}

// Wait blocks until the thread stops or dies. A death is returned as an
// *ExitError together with its status.
func (t *Tracee) Wait() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(t.Tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for thread %d: %w", t.Tid, os.NewSyscallError("wait4", err))
		}
		break
	}
	if ws.Exited() || ws.Signaled() {
		return ws, &ExitError{Tid: t.Tid, Status: ws}
	}
	return ws, nil
}

// waitStop is Wait giving up after timeout: it polls, every few tens of
// microseconds at first (a thread stops within a millisecond, as soon as
// it is scheduled), backing off after that. The pauses block this locked
// thread (sys.Nap): time.Sleep would round them up to a millisecond.
func (t *Tracee) waitStop(timeout time.Duration) (unix.WaitStatus, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	pause := 10 * time.Microsecond
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(t.Tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, fmt.Errorf("wait for thread %d: %w", t.Tid, os.NewSyscallError("wait4", err))
		case pid == t.Tid:
			if ws.Exited() || ws.Signaled() {
				return ws, &ExitError{Tid: t.Tid, Status: ws}
			}
			return ws, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("thread %d: %w", t.Tid, ErrNotStopping)
		}
		sys.Nap(pause)
		if time.Since(start) < 5*time.Millisecond {
			pause = min(2*pause, 50*time.Microsecond)
		} else {
			pause = min(2*pause, 10*time.Millisecond)
		}
	}
}

// StopKind classifies a ptrace stop.
type StopKind int

const (
	// NotStopped: the status is not a stop (exit, death or continue).
	NotStopped StopKind = iota
	// SignalDeliveryStop: the thread dequeued a signal; resuming with that
	// signal delivers it, resuming with 0 discards it.
	SignalDeliveryStop
	// SyscallStop: syscall entry or exit after PTRACE_SYSCALL; SyscallInfo
	// tells which.
	SyscallStop
	// InterruptStop: PTRACE_EVENT_STOP caused by PTRACE_INTERRUPT (or a
	// job-control notification), status 0x80057f.
	InterruptStop
	// GroupStop: PTRACE_EVENT_STOP of a job-control stop; StopSignal is the
	// stop signal.
	GroupStop
	// EventStop: any other PTRACE_EVENT_* stop.
	EventStop
)

// KindOf classifies a wait status of a thread seized with Seize.
func KindOf(ws unix.WaitStatus) StopKind {
	if !ws.Stopped() {
		return NotStopped
	}
	sig := ws.StopSignal()
	if sig == unix.SIGTRAP|0x80 {
		return SyscallStop
	}
	switch event := int(ws) >> 16; {
	case event == unix.PTRACE_EVENT_STOP && sig == unix.SIGTRAP:
		return InterruptStop
	case event == unix.PTRACE_EVENT_STOP:
		return GroupStop
	case event != 0:
		return EventStop
	}
	return SignalDeliveryStop
}

// Regs returns the general-purpose registers (PTRACE_GETREGSET NT_PRSTATUS).
func (t *Tracee) Regs() (Regs, error) {
	var regs Regs
	if err := t.onTracer(); err != nil {
		return regs, err
	}
	n, err := t.getRegset(unix.NT_PRSTATUS, unsafe.Pointer(&regs), unsafe.Sizeof(regs))
	if err != nil {
		return regs, fmt.Errorf("get registers of thread %d: %w", t.Tid, err)
	}
	if n != unsafe.Sizeof(regs) {
		return regs, fmt.Errorf("get registers of thread %d: kernel returned %d bytes, want %d", t.Tid, n, unsafe.Sizeof(regs))
	}
	return regs, nil
}

// SetRegs writes the general-purpose registers (PTRACE_SETREGSET
// NT_PRSTATUS).
func (t *Tracee) SetRegs(regs Regs) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&regs))}
	iov.SetLen(int(unsafe.Sizeof(regs)))
	if _, err := ptrace(unix.PTRACE_SETREGSET, t.Tid, unix.NT_PRSTATUS, uintptr(unsafe.Pointer(&iov))); err != nil {
		return fmt.Errorf("set registers of thread %d: %w", t.Tid, err)
	}
	return nil
}

func (t *Tracee) getRegset(note int, buf unsafe.Pointer, size uintptr) (uintptr, error) {
	iov := unix.Iovec{Base: (*byte)(buf)}
	iov.SetLen(int(size))
	if _, err := ptrace(unix.PTRACE_GETREGSET, t.Tid, uintptr(note), uintptr(unsafe.Pointer(&iov))); err != nil {
		return 0, err
	}
	return uintptr(iov.Len), nil
}

// SigMask returns the thread's blocked-signal mask (bit n-1 is signal n).
// While the thread sits in a call with a temporary mask (ppoll, pselect,
// sigsuspend), the kernel reports the mask to restore after the call.
func (t *Tracee) SigMask() (uint64, error) {
	if err := t.onTracer(); err != nil {
		return 0, err
	}
	var mask uint64
	if _, err := ptrace(unix.PTRACE_GETSIGMASK, t.Tid, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask))); err != nil {
		return 0, fmt.Errorf("get signal mask of thread %d: %w", t.Tid, err)
	}
	return mask, nil
}

// SetSigMask sets the blocked-signal mask; the kernel silently keeps
// SIGKILL and SIGSTOP unblocked. It also drops a temporary mask installed by
// an interrupted ppoll/pselect/sigsuspend, which the call reinstalls when
// the kernel restarts it.
func (t *Tracee) SetSigMask(mask uint64) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	if _, err := ptrace(unix.PTRACE_SETSIGMASK, t.Tid, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask))); err != nil {
		return fmt.Errorf("set signal mask of thread %d: %w", t.Tid, err)
	}
	return nil
}

func (t *Tracee) onTracer() error {
	if unix.Gettid() != t.tracer {
		return fmt.Errorf("thread %d seized by OS thread %d: %w", t.Tid, t.tracer, ErrWrongThread)
	}
	return nil
}

// ptrace issues one request, retrying EINTR, and returns the kernel's
// return value (a count for PTRACE_PEEKSIGINFO and PTRACE_GET_*).
func ptrace(request int, tid int, addr, data uintptr) (uintptr, error) {
	if err := fault.Call(requestName(request)); err != nil {
		return 0, os.NewSyscallError(requestName(request), err)
	}
	for {
		r, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(request), uintptr(tid), addr, data, 0, 0)
		switch errno {
		case 0:
			return r, nil
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError(requestName(request), errno)
	}
}

func requestName(request int) string {
	switch request {
	case unix.PTRACE_SEIZE:
		return "ptrace(PTRACE_SEIZE)"
	case unix.PTRACE_INTERRUPT:
		return "ptrace(PTRACE_INTERRUPT)"
	case unix.PTRACE_DETACH:
		return "ptrace(PTRACE_DETACH)"
	case unix.PTRACE_CONT:
		return "ptrace(PTRACE_CONT)"
	case unix.PTRACE_SYSCALL:
		return "ptrace(PTRACE_SYSCALL)"
	case unix.PTRACE_GETREGSET:
		return "ptrace(PTRACE_GETREGSET)"
	case unix.PTRACE_SETREGSET:
		return "ptrace(PTRACE_SETREGSET)"
	case unix.PTRACE_GETSIGMASK:
		return "ptrace(PTRACE_GETSIGMASK)"
	case unix.PTRACE_SETSIGMASK:
		return "ptrace(PTRACE_SETSIGMASK)"
	case unix.PTRACE_PEEKSIGINFO:
		return "ptrace(PTRACE_PEEKSIGINFO)"
	case unix.PTRACE_GET_RSEQ_CONFIGURATION:
		return "ptrace(PTRACE_GET_RSEQ_CONFIGURATION)"
	case unix.PTRACE_GET_SYSCALL_INFO:
		return "ptrace(PTRACE_GET_SYSCALL_INFO)"
	case unix.PTRACE_SETOPTIONS:
		return "ptrace(PTRACE_SETOPTIONS)"
	}
	return fmt.Sprintf("ptrace(%#x)", request)
}

package ptrace

import "golang.org/x/sys/unix"

// Restart codes the kernel leaves in rax of a thread stopped inside a
// system call it means to restart: after a stop with no handler to run,
// ERESTARTSYS, ERESTARTNOINTR and ERESTARTNOHAND run the call again and
// ERESTART_RESTARTBLOCK goes through restart_syscall(2).
const (
	ErrRestartSys          = 512
	ErrRestartNoIntr       = 513
	ErrRestartNoHand       = 514
	ErrRestartRestartBlock = 516
)

// InterruptedByStop reports the system calls that fail with EINTR when
// their thread is stopped and continued, handler or not (signal(7),
// "Interruption of system calls and library functions by stop signals"):
// a ptrace stop, the freeze of a checkpoint, ends them the same way. Their
// timeouts are relative, so a call made again waits its whole timeout
// again: a late return, which callers handle, rather than an EINTR they
// may not.
func InterruptedByStop(nr int64) bool {
	switch nr {
	case unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2,
		unix.SYS_SEMOP, unix.SYS_SEMTIMEDOP,
		unix.SYS_RT_SIGTIMEDWAIT:
		return true
	}
	return false
}

// KeepWaiting undoes what a stop did to a thread waiting in one of the
// calls InterruptedByStop lists: a thread stopped with -EINTR from such a
// call gets -ERESTARTNOHAND instead, so that when it runs on, the kernel
// makes the call again unless a signal handler runs (which the EINTR is
// then for). It reports whether regs changed.
func KeepWaiting(regs *Regs) bool {
	nr := int64(regs.Orig_rax)
	if nr < 0 || int64(regs.Rax) != -int64(unix.EINTR) || !InterruptedByStop(nr) {
		return false
	}
	code := -int64(ErrRestartNoHand)
	regs.Rax = uint64(code)
	return true
}

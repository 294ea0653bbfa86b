package ptrace

import "fmt"

// Restart codes the kernel leaves in rax of a thread stopped inside a
// system call it means to restart (include/linux/errno.h).
const (
	RestartSys          = 512 // ERESTARTSYS
	RestartNoIntr       = 513 // ERESTARTNOINTR
	RestartNoHand       = 514 // ERESTARTNOHAND
	RestartRestartBlock = 516 // ERESTART_RESTARTBLOCK
)

// RewindCall turns the registers of a thread interrupted inside a system
// call (the call in orig_rax, ERESTARTSYS, ERESTARTNOINTR or
// ERESTARTNOHAND in rax, the instruction pointer past the syscall
// instruction) into those that run the call again from its syscall
// instruction, as the kernel does when no handler runs; again is false if
// the registers hold no such call.
func RewindCall(interrupted Regs) (run Regs, again bool) {
	run = interrupted
	if int64(interrupted.Orig_rax) < 0 {
		return run, false
	}
	switch -int64(interrupted.Rax) {
	case RestartSys, RestartNoIntr, RestartNoHand:
		run.Rax = interrupted.Orig_rax
		run.Orig_rax = ^uint64(0)
		run.Rip -= 2
		return run, true
	}
	return run, false
}

// DetachIntoCall lets go a stopped thread that sits inside an interrupted
// system call (interrupted: its registers, see RewindCall), after running
// it back into the call under trace: it is detached at the call's entry
// stop, and from there the kernel alone decides what a signal does to the
// call. Detached at once, the thread would return to user space through
// the kernel's restart of the call, which decides before the return: a
// signal arriving in between runs its handler and then the call again, a
// lost wakeup for a program looping on pause() around its handler's flag.
// A signal (or a stop) that comes before the call is delivered with the
// interrupted registers, which is what the kernel would have done. A
// thread not inside such a call is simply detached.
func (t *Tracee) DetachIntoCall(interrupted Regs) error {
	run, again := RewindCall(interrupted)
	if !again {
		return t.Detach()
	}
	if err := t.SetRegs(run); err != nil {
		return err
	}
	for {
		if err := t.Syscall(0); err != nil {
			return err
		}
		ws, err := t.Wait()
		if err != nil {
			return err
		}
		switch KindOf(ws) {
		case SyscallStop:
			regs, err := t.Regs()
			if err != nil {
				return err
			}
			if regs.Orig_rax != interrupted.Orig_rax || regs.Rip != interrupted.Rip {
				return fmt.Errorf("thread %d: running into system call %d at %#x, stopped in %d at %#x",
					t.Tid, int64(interrupted.Orig_rax), interrupted.Rip, int64(regs.Orig_rax), regs.Rip)
			}
			return t.Detach()
		case SignalDeliveryStop, GroupStop:
			if err := t.SetRegs(interrupted); err != nil {
				return err
			}
			sig := 0
			if KindOf(ws) == SignalDeliveryStop {
				sig = int(ws.StopSignal())
			}
			return t.DetachSignal(sig)
		case InterruptStop:
			// Left pending by Seize.
		default:
			return &UnexpectedStopError{Tid: t.Tid, Status: ws}
		}
	}
}

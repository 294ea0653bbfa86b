package checkpoint

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/sys"
)

// listTree lists the processes of the tree rooted at root, parents first,
// as they are now: the tree runs, so this is only what the steps before
// the freeze go by (freezeTree lists it again, race-free).
func listTree(root int) []int {
	pids, seen := []int{root}, map[int]bool{root: true}
	for i := 0; i < len(pids); i++ {
		tids, err := procfs.Tids(pids[i])
		if err != nil {
			continue
		}
		for _, tid := range tids {
			kids, _ := procfs.Children(pids[i], tid)
			for _, k := range kids {
				if !seen[k] {
					seen[k] = true
					pids = append(pids, k)
				}
			}
		}
	}
	return pids
}

// wakeWait bounds how long wake waits for the processes it woke to sleep
// again.
const wakeWait = 100 * time.Millisecond

// wake takes each process of pids asleep in a restartable call (see
// restartsUnseen) through a ptrace stop and back, and waits for it to
// sleep again. On a machine with shadow paging (a virtual machine without
// nested paging, as this one) the page-table pages a process changed since
// it last entered user mode are brought into line when it next does, at a
// cost that grows with its memory (~10-13 ms for a GiB written to, here);
// a process that wrote its memory and went to sleep would otherwise pay
// that at the first call injected into it while frozen. A process that
// runs pays it as it runs; any other is left alone.
func wake(pids []int) {
	woken := map[int]int64{} // pid: the call it sleeps in
	for _, pid := range pids {
		if st, err := procfs.ReadStat(pid); err != nil || st.State != 'S' {
			continue
		}
		b, ok, err := procfs.ReadSyscall(pid)
		if err != nil || !ok || !restartsUnseen(b) {
			continue
		}
		t, err := ptrace.Seize(pid)
		if err != nil {
			continue
		}
		// Detached from a job-control stop it got meanwhile, a process
		// stays stopped.
		if err := letGo(t); err == nil && t.GroupStopSignal() == 0 {
			woken[pid] = b.Nr
		}
	}
	// Back asleep means back in its call: caught on its way there (its
	// state reads as stopped or sleeping for a moment after the detach),
	// it would be checkpointed at the system call instruction, not in the
	// call, and a signal sent as soon as it is restored would run its
	// handler before the call instead of ending it.
	deadline := time.Now().Add(wakeWait)
	for pid, nr := range woken {
		for time.Now().Before(deadline) {
			if b, ok, err := procfs.ReadSyscall(pid); err != nil || ok && b.Nr == nr {
				break
			}
			sys.Nap(100 * time.Microsecond) // time.Sleep would take a millisecond
		}
	}
}

// letGo detaches a process wake took. Putting back is never failed by
// the fault injection tests: it is the undo of every failure.
func letGo(t *ptrace.Tracee) error {
	if fault.Enabled {
		defer fault.Suspend()()
	}
	return t.Detach()
}

// futex(2) operations and flags (linux/futex.h), which x/sys/unix lacks.
const (
	futexWait          = 0
	futexWaitBitset    = 9
	futexPrivateFlag   = 128
	futexClockRealtime = 256
)

// restartsUnseen says whether a thread asleep in call b, stopped by ptrace
// and let go without a signal, goes back into the same call with the same
// arguments, nothing seen by the program nor by a checkpoint taken after:
// the kernel returns -ERESTARTNOHAND or -ERESTARTSYS and the call is made
// again. Calls with a timeout are not (their restart goes through
// restart_syscall(2), whose state is the kernel's alone), nor epoll_wait
// and other calls that return EINTR to the program.
func restartsUnseen(b procfs.Blocked) bool {
	switch b.Nr {
	case unix.SYS_PAUSE, unix.SYS_RT_SIGSUSPEND, unix.SYS_WAIT4, unix.SYS_WAITID:
		return true
	case unix.SYS_FUTEX:
		// A wait without timeout (FUTEX_WAIT, FUTEX_WAIT_BITSET; private
		// or not).
		op := b.Args[1] &^ (futexPrivateFlag | futexClockRealtime)
		return (op == futexWait || op == futexWaitBitset) && b.Args[3] == 0
	}
	return false
}

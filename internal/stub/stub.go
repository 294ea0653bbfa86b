package stub

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrPidInUse is returned (wrapping unix.EEXIST) when the requested pid
// belongs to a live process or a zombie not yet reaped.
var ErrPidInUse = errors.New("pid in use")

// cloneArgs is struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1).
type cloneArgs struct {
	Flags      uint64
	Pidfd      uint64
	ChildTid   uint64
	ParentTid  uint64
	ExitSignal uint64
	Stack      uint64
	StackSize  uint64
	TLS        uint64
	SetTid     uint64
	SetTidSize uint64
}

// forkState is everything spawn touches, allocated by the caller so that
// spawn, running in the child too, neither allocates nor grows its stack.
type forkState struct {
	args    cloneArgs
	tids    [maxLevels]int32 // set_tid: pid_t, innermost pid namespace first
	all     uint64
	oldMask uint64
}

// maxLevels bounds how many pid namespaces deep a stub's pids are chosen.
const maxLevels = 4

// Spawn creates a single-threaded child process with pid exactly pid (any
// pid if pid is 0) in the caller's pid namespace, cgroup and namespaces. The
// child blocks all signals and loops on pause() until it is seized; it is
// reaped by wait4 like any child (exit signal SIGCHLD). Spawn must be called
// with the goroutine locked to its OS thread (runtime.LockOSThread), and
// that thread should seize the child. Choosing the pid needs
// CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the pid namespace.
func Spawn(pid int) (int, error) {
	if pid < 0 || pid > 1<<22 {
		return 0, fmt.Errorf("stub: spawn: invalid pid %d", pid)
	}
	var tids []int
	if pid != 0 {
		tids = []int{pid}
	}
	return SpawnIn(0, tids)
}

// SpawnIn is Spawn in new namespaces: flags are the CLONE_NEW* flags of
// the namespaces to make for the child (uts, ipc, net, pid, cgroup), and
// tids its pids, innermost pid namespace first (with CLONE_NEWPID, 1 in
// the new one), as far up as they are chosen; none: any pid. It returns
// the child's pid in the caller's pid namespace.
func SpawnIn(flags uint64, tids []int) (int, error) {
	if len(tids) > maxLevels {
		return 0, fmt.Errorf("stub: spawn: pids in %d pid namespaces, at most %d", len(tids), maxLevels)
	}
	for _, pid := range tids {
		if pid <= 0 || pid > 1<<22 {
			return 0, fmt.Errorf("stub: spawn: invalid pid %d", pid)
		}
	}
	st := &forkState{all: ^uint64(0)}
	st.args.ExitSignal = uint64(unix.SIGCHLD)
	st.args.Flags = flags
	for i, pid := range tids {
		st.tids[i] = int32(pid)
	}
	if len(tids) > 0 {
		st.args.SetTid = uint64(uintptr(unsafe.Pointer(&st.tids[0])))
		st.args.SetTidSize = uint64(len(tids))
	}
	child, errno := spawn(st)
	runtime.KeepAlive(st)
	switch errno {
	case 0:
		return child, nil
	case unix.EEXIST:
		return 0, fmt.Errorf("stub: spawn at pids %v: %w: %w", tids, ErrPidInUse, os.NewSyscallError("clone3", errno))
	}
	return 0, fmt.Errorf("stub: spawn at pids %v with flags %#x: %w", tids, flags, os.NewSyscallError("clone3", errno))
}

// SpawnInit creates the stub as pid 1 of a new pid namespace
// (CLONE_NEWPID) and returns its pid in the caller's namespace. Its
// children can then be given any pid in the new namespace with set_tid.
// Like Spawn, it must be called on a locked OS thread, which seizes the
// child.
func SpawnInit() (int, error) {
	return SpawnIn(unix.CLONE_NEWPID, nil)
}

// spawn forks with all signals blocked. In the child it must run nothing
// but raw system calls: the child has one thread and a copy of a runtime
// that thinks it has many, so a stack check, an allocation or a signal
// handler would wedge or crash it. Hence nosplit, norace, no calls other
// than syscall.RawSyscall6 (itself nosplit down to the SYSCALL
// instruction), and no pointers written.
//
//go:nosplit
//go:norace
func spawn(st *forkState) (int, syscall.Errno) {
	// Blocked before the clone so the child is born with everything blocked
	// and no signal reaches a Go handler in it; the parent's thread gets
	// its mask back right after.
	_, _, errno := syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&st.all)), uintptr(unsafe.Pointer(&st.oldMask)), 8, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	child, _, errno := syscall.RawSyscall6(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&st.args)), unsafe.Sizeof(st.args), 0, 0, 0, 0)
	if errno == 0 && child == 0 {
		for {
			syscall.RawSyscall6(unix.SYS_PAUSE, 0, 0, 0, 0, 0, 0)
		}
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&st.oldMask)), 0, 8, 0, 0)
	return int(child), errno
}

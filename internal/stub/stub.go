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
	// parent is the caller's pid as the child sees its parent, 0 when
	// the child cannot see it (a pid namespace below the caller's): the
	// child ends if getppid says otherwise, its parent gone before the
	// parent-death signal was set (reparented, in a namespace below, to
	// that namespace's init).
	parent uintptr
}

// maxLevels bounds how many pid namespaces deep a stub's pids are chosen.
const maxLevels = 4

// Spawn creates a single-threaded child process with pid exactly pid (any
// pid if pid is 0) in the caller's pid namespace, cgroup and namespaces. The
// child blocks all signals and loops on pause() until it is seized; it is
// reaped by wait4 like any child (exit signal SIGCHLD). It dies with the
// calling thread (PR_SET_PDEATHSIG, SIGKILL), which its seizer must clear
// once the thread may end. Spawn must be called
// with the goroutine locked to its OS thread (runtime.LockOSThread), and
// that thread should seize the child. Choosing the pid needs
// CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the pid namespace.
func Spawn(pid int) (int, error) {
	return SpawnIn(0, pidList(pid))
}

// SpawnSibling is Spawn, but the child is the caller's sibling
// (CLONE_PARENT): a child of the caller's parent, which is the one to wait
// for it, as a container runtime waits for the container it had CRIU
// restore. Its parent-death signal then follows the parent's thread that
// started the caller, and a caller that dies before seizing it leaves it
// paused for the parent to kill.
func SpawnSibling(pid int) (int, error) {
	return SpawnIn(unix.CLONE_PARENT, pidList(pid))
}

// SpawnInit creates the stub as pid 1 of a new pid namespace
// (CLONE_NEWPID) and returns its pid in the caller's namespace. Its
// children can then be given any pid in the new namespace with set_tid.
// Like Spawn, it must be called on a locked OS thread, which seizes the
// child.
func SpawnInit() (int, error) {
	return SpawnIn(unix.CLONE_NEWPID, nil)
}

// SpawnInitSibling is SpawnInit for a child of the caller's parent, as
// SpawnSibling.
func SpawnInitSibling() (int, error) {
	return SpawnIn(unix.CLONE_NEWPID|unix.CLONE_PARENT, nil)
}

// SpawnBelow is Spawn on a thread that makes its children in a pid
// namespace below the caller's (setns with CLONE_NEWPID to one whose init
// exists): pid is the child's pid there, and the pid returned its pid in
// the caller's namespace.
func SpawnBelow(pid int) (int, error) {
	return spawnIn(0, pidList(pid), true)
}

func pidList(pid int) []int {
	if pid == 0 {
		return nil
	}
	return []int{pid}
}

// SpawnIn is Spawn with clone flags: the CLONE_NEW* flags of the
// namespaces to make for the child (uts, ipc, net, pid, cgroup), and
// CLONE_PARENT for a sibling (SpawnSibling). tids are its pids, innermost
// pid namespace first (with CLONE_NEWPID, 1 in the new one), as far up as
// they are chosen; none: any pid. It returns the child's pid in the
// caller's pid namespace.
func SpawnIn(flags uint64, tids []int) (int, error) {
	return spawnIn(flags, tids, false)
}

// spawnIn is SpawnIn; below says the caller's thread makes its children
// in a pid namespace below its own.
func spawnIn(flags uint64, tids []int, below bool) (int, error) {
	if len(tids) > maxLevels {
		return 0, fmt.Errorf("stub: spawn: pids in %d pid namespaces, at most %d", len(tids), maxLevels)
	}
	for _, pid := range tids {
		if pid <= 0 || pid > 1<<22 {
			return 0, fmt.Errorf("stub: spawn: invalid pid %d", pid)
		}
	}
	st := &forkState{all: ^uint64(0), parent: uintptr(os.Getpid())}
	st.args.ExitSignal = uint64(unix.SIGCHLD)
	st.args.Flags = flags
	if flags&unix.CLONE_PARENT != 0 {
		// Its exit signal is then the caller's own (clone3 takes none).
		st.args.ExitSignal = 0
		st.parent = uintptr(os.Getppid())
	}
	if flags&unix.CLONE_NEWPID != 0 || below {
		st.parent = 0 // its parent is outside its pid namespace: getppid says 0
	}
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
		// Until crsub seizes it (with PTRACE_O_EXITKILL), nothing else
		// would end the stub if crsub died: it would hold the image's pid.
		// A parent gone before the prctl took effect is seen by getppid.
		syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0, 0)
		if ppid, _, _ := syscall.RawSyscall6(unix.SYS_GETPPID, 0, 0, 0, 0, 0, 0); ppid != st.parent {
			syscall.RawSyscall6(unix.SYS_EXIT_GROUP, 0, 0, 0, 0, 0, 0)
		}
		for {
			syscall.RawSyscall6(unix.SYS_PAUSE, 0, 0, 0, 0, 0, 0)
		}
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&st.oldMask)), 0, 8, 0, 0)
	return int(child), errno
}

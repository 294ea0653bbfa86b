package restart

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/stub"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/substitute"
)

// task is one process being rebuilt. It implements files.Target.
type task struct {
	pid    int // as in the image
	host   int // as crsub sees it: for ptrace, /proc and signals from here
	s      *restorer
	tracee *ptrace.Tracee
	remote *remote.Remote
	pidfd  *sys.FD
	mem    *os.File // /proc/PID/mem, for writing pages

	process *ckpt.Process
	thread  *ckpt.Thread // the main thread
	threads []*thread    // the others, created late in the restart
	signals *ckpt.Signals
	mm      *ckpt.MM
	vmas    []ckpt.VMA

	// parent is the task this one was forked from (nil for the root).
	// inheritable holds, by start, the parent's mappings the task kept
	// for its own VMAs of the same range; inherited are those kept and
	// being filled (inherit.go).
	parent      *task
	inheritable map[uint64]ckpt.VMA
	inherited   []*inheritedVMA

	// mapped is the file the last file mapping opened, kept open inside
	// the task for the mappings that follow (a library maps 4 or 5): one
	// open for all of them.
	mapped struct {
		path   string
		oflags int
		fd     int // -1: none
	}
	// sysvParts are the System V attachments made whole at a free place
	// whose parts (an mprotect split them) are moved out to where they
	// were, by segment and address of the attachment at checkpoint: where
	// each is attached now (moveSysVPart).
	sysvParts map[sysvAttachment]span

	scratch     uint64 // scratch buffer inside the task
	scratchSize uint64
	codePage    uint64

	files       map[ckpt.Objref]*openFile
	held        map[*int]bool // target fds holding objects not placed yet
	placed      map[int]ckpt.Objref
	preserved   map[int]bool
	substitutes map[int]substitute.Source
	substituted map[int]substitute.Opened
	// callerPidfd is a pidfd of this process inside the task, through
	// which it takes substitutes with pidfd_getfd.
	callerPidfd int
	// sharesFdTable says the task shares its parent's fd table (forked
	// with CLONE_FILES): the fds there are the table owner's to place and
	// close, and the task has none of its own.
	sharesFdTable bool
	released      bool
	// helperPid is, for a helper that is no process of the image
	// (session.go), its pid in its pid namespace.
	helperPid int
	// setsidLater says the task, a session leader, is still in the
	// session it was born in, for the children it forked there.
	setsidLater bool
}

// openFile is a file restored in a task, before and after its fds are
// placed.
type openFile struct {
	fd     int // target fd: temporary until placed, then the first placed number
	placed bool
}

// createTask makes the task that will become pid, the root: a stopped,
// traced stub with exactly that pid (in each pid namespace it is chosen
// in, pidLevels), waiting out a zombie that still holds it, made with the
// CLONE_NEW* flags of the namespaces to make for it. Its errors are the
// caller's to say pid with.
func createTask(pid int, flags uint64, s *restorer) (*task, error) {
	var child int
	tids, inCrsubs := s.pidLevels(pid)
	if flags&unix.CLONE_NEWPID != 0 {
		// The init of its namespace.
		tids[0] = 1
	}
	if s.opts.PidNamespace && !s.recordsPidNamespaces() {
		tids = nil // the legacy new namespace: pid 1, any pid in crsub's
	}
	if s.opts.Sibling {
		flags |= unix.CLONE_PARENT
	}
	create := func() error {
		var err error
		child, err = stub.SpawnIn(flags, tids)
		if errors.Is(err, stub.ErrPidInUse) {
			return errPidInUse
		}
		if err != nil {
			return fmt.Errorf("starting its stub: %w", err)
		}
		return nil
	}
	var err error
	switch {
	case s.opts.AnyRootPid && len(s.tasks) == 0 && len(tids) == 2 && tids[0] == 1:
		// The init of its own pid namespace: its pid in crsub's is its
		// own once free (the original, killed, may not be reaped yet),
		// another if a live process holds it.
		err = s.whenPidFree(pid, create, func() error {
			tids = tids[:1]
			return create()
		})
	case inCrsubs:
		err = s.whenPidFree(pid, create, nil)
	default:
		err = create()
	}
	if err != nil {
		return nil, err
	}
	t := newTask(pid, child, s)
	// Preserved fds and substitutes are for the root process.
	t.preserved = s.preserved
	t.substitutes = s.opts.Substitutes
	if t.substitutes == nil {
		t.substitutes = s.opts.ProcessSubstitutes[pid]
	}
	if t.tracee, err = ptrace.Seize(child, ptrace.SuspendSeccomp, ptrace.ExitKill); err != nil {
		t.kill()
		return nil, fmt.Errorf("taking over the new task: %w", err)
	}
	if t.pidfd, err = sys.PidfdOpen(child); err != nil {
		t.kill()
		return nil, err
	}
	xs, err := t.tracee.XState()
	if err != nil {
		t.kill()
		return nil, err
	}
	layout, err := ptrace.ParseXStateLayout(xs)
	if err != nil {
		t.kill()
		return nil, err
	}
	if h := s.header; h.XStateSize != 0 && (h.XStateSize != layout.Size || h.XFeatures != layout.XCR0) {
		t.kill()
		return nil, fmt.Errorf("the image's FPU state layout (%d bytes, XCR0 %#x) differs from this CPU's (%d bytes, XCR0 %#x)", h.XStateSize, h.XFeatures, layout.Size, layout.XCR0)
	}
	return t, nil
}

func newTask(pid, host int, s *restorer) *task {
	t := &task{pid: pid, host: host, s: s, files: map[ckpt.Objref]*openFile{}, held: map[*int]bool{}, placed: map[int]ckpt.Objref{},
		preserved: map[int]bool{}, substitutes: map[int]substitute.Source{}, substituted: map[int]substitute.Opened{}, callerPidfd: s.selfPidfd}
	t.mapped.fd = -1
	return t
}

// inner is the task's pid as it sees itself: in a new pid namespace, the
// one it gets there.
func (t *task) inner() int {
	if t.helperPid != 0 {
		return t.helperPid
	}
	return t.s.innerPid(t.pid)
}

// errPidInUse is what a create function returns when the pid is taken.
var errPidInUse = errors.New("pid in use")

// whenPidFree runs create until it stops reporting errPidInUse: a pid held
// by a zombie about to be reaped (pid 1 reaps slowly on some machines) is
// waited for, up to Options.PidWait; a pid held by a live process is an
// error naming it, unless heldElsewhere is given, which then creates the
// task instead (with another pid).
func (s *restorer) whenPidFree(pid int, create, heldElsewhere func() error) error {
	deadline := time.Now().Add(s.opts.PidWait)
	for {
		err := create()
		if !errors.Is(err, errPidInUse) {
			return err
		}
		st, serr := procfs.ReadStat(pid)
		switch {
		case serr != nil || st.State == 'Z' || st.State == 'X' || st.Flags&pfExiting != 0 || dying(pid):
			// Gone or dying (a checkpointer killed it a moment ago): about
			// to be free.
		case heldElsewhere != nil:
			return heldElsewhere()
		case st.State == 't':
			// Frozen by a checkpointer, which kills it once its image is
			// written: for a streaming checkpoint, that is this image.
			// Take the stream in meanwhile, and wait as long as it flows.
			if s.spool != nil {
				if err := s.spool.start(); err != nil {
					return fmt.Errorf("pid %d is held by its frozen original; reading the image ahead: %w", pid, err)
				}
				if s.spool.draining() {
					deadline = time.Now().Add(s.opts.PidWait)
				}
			}
		default:
			return &PidInUseError{Pid: pid, Comm: st.Comm, State: st.State}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d is still held by an unreaped process after %v", pid, s.opts.PidWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pfExiting is PF_EXITING in /proc/PID/stat's flags: the task is in exit.
const pfExiting = 0x4

// dying says whether pid has a SIGKILL on its way.
func dying(pid int) bool {
	st, err := procfs.ReadStatus(pid)
	const sigkill = 1 << (unix.SIGKILL - 1)
	return err == nil && (st.ShdPnd|st.SigPnd)&sigkill != 0
}

// kill ends the task and reaps it: nothing half-restored survives. A
// released task is left alone: a zombie, or a process running as restored.
func (t *task) kill() {
	if t.released {
		return
	}
	t.end()
}

// end kills the task, released or not, and reaps what crsub has to.
func (t *task) end() {
	_ = unix.Kill(t.host, unix.SIGKILL)
	// A thread crsub still traces is its to reap: until it is, the
	// process's leader is not reported dead.
	for _, x := range t.threads {
		if x.tracee != nil {
			reap(x.tracee.Tid)
		}
	}
	reap(t.host)
	t.closeHandles()
}

// reap waits for tid, a tracee or child of crsub, to end.
func reap(tid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err != unix.EINTR {
			return
		}
	}
}

func (t *task) closeHandles() {
	if t.remote != nil {
		_ = t.remote.Close()
	}
	for _, x := range t.threads {
		if x.remote != nil {
			_ = x.remote.Close()
		}
	}
	if t.mem != nil {
		t.mem.Close()
		t.mem = nil
	}
	if t.pidfd != nil {
		t.pidfd.Close()
		t.pidfd = nil
	}
}

// Pid implements files.Target.
func (t *task) Pid() int { return t.pid }

// Syscall implements files.Target.
func (t *task) Syscall(nr int, args ...uint64) (uint64, error) {
	if t.remote == nil {
		return 0, errors.New("no system calls before the address space is prepared")
	}
	return t.remote.Syscall(nr, args...)
}

// Warn implements files.Target.
func (t *task) Warn(msg string, args ...any) {
	t.s.log.Warn(msg, append([]any{"pid", t.pid}, args...)...)
}

// putString writes a NUL-terminated string into the scratch buffer.
func (t *task) putString(off uint64, s string) (uint64, error) {
	if uint64(len(s))+1 > t.scratchSize-off {
		return 0, fmt.Errorf("string of %d bytes does not fit the scratch buffer", len(s))
	}
	addr := t.scratch + off
	return addr, t.remote.WriteMem(addr, append([]byte(s), 0))
}

// atFdcwd is AT_FDCWD as a register value.
var atFdcwd = func() uint64 { v := int64(unix.AT_FDCWD); return uint64(v) }()

// Open implements files.Target.
func (t *task) Open(path string, flags int, mode uint32) (int, error) {
	addr, err := t.putString(0, path)
	if err != nil {
		return -1, err
	}
	fd, err := t.Syscall(unix.SYS_OPENAT, atFdcwd, addr, uint64(flags|unix.O_CLOEXEC), uint64(mode))
	if err != nil && t.inUserNamespace() && flags&unix.O_CREAT == 0 && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		return t.openForIt(path, flags, err)
	}
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// openForIt opens path, an existing file that task t, in a user namespace
// of the image, may not open itself (what the process had open was often
// opened for it outside, by whoever started the container: a log on the
// host, its terminal), as crsub, through t's root and working directory,
// and hands it over (passfd.go). denied is why t could not.
func (t *task) openForIt(path string, flags int, denied error) (int, error) {
	local, err := unix.Open(t.hostPath(path), flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errors.Join(denied, &os.PathError{Op: "open as crsub", Path: t.hostPath(path), Err: err})
	}
	defer unix.Close(local)
	return t.passLocal(local)
}

// Pipe2 implements files.Target.
func (t *task) Pipe2(flags int) (int, int, error) {
	if _, err := t.Syscall(unix.SYS_PIPE2, t.scratch, uint64(flags|unix.O_CLOEXEC)); err != nil {
		return -1, -1, err
	}
	b := make([]byte, 8)
	if err := t.remote.ReadMem(t.scratch, b); err != nil {
		return -1, -1, err
	}
	return int(int32(le32(b))), int(int32(le32(b[4:]))), nil
}

// Copy implements files.Target.
func (t *task) Copy(fd int) (*os.File, error) {
	c, err := sys.PidfdGetfd(t.pidfd, fd)
	if err != nil {
		return nil, err
	}
	return c.File(fmt.Sprintf("pid %d fd %d", t.pid, fd)), nil
}

// FdOf implements files.Target.
func (t *task) FdOf(ref ckpt.Objref) (int, bool) {
	for fd, r := range t.placed {
		if r == ref {
			return fd, true
		}
	}
	return -1, false
}

// Scratch implements files.Target.
func (t *task) Scratch(b []byte) (uint64, error) {
	if uint64(len(b)) > t.scratchSize {
		return 0, fmt.Errorf("%d bytes do not fit the scratch buffer", len(b))
	}
	return t.scratch, t.remote.WriteMem(t.scratch, b)
}

// ReadScratch implements files.Target.
func (t *task) ReadScratch(n int) ([]byte, error) {
	if uint64(n) > t.scratchSize {
		return nil, fmt.Errorf("%d bytes are more than the scratch buffer", n)
	}
	b := make([]byte, n)
	return b, t.remote.ReadMem(t.scratch, b)
}

// Hold implements files.Target.
func (t *task) Hold(fd *int) { t.held[fd] = true }

// Unhold implements files.Target.
func (t *task) Unhold(fd *int) { delete(t.held, fd) }

// prepareRelease gives every thread its final registers, FPU state and
// signal mask: the other threads first, the main thread, whose code page
// goes with its last system call, last. Nothing runs yet.
func (t *task) prepareRelease() error {
	for _, x := range t.threads {
		if err := setFinalState(x.remote, x.tracee, x.image); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	if err := setFinalState(t.remote, t.tracee, t.thread); err != nil {
		return err
	}
	if t.process != nil && t.process.Stopped {
		// Queued while the threads are still held, it stops the process
		// before it runs an instruction: stopped, as it was.
		sig := unix.SIGSTOP
		if s := t.process.StopSignal; s != 0 {
			sig = unix.Signal(s)
		}
		if err := unix.Kill(t.host, sig); err != nil {
			return fmt.Errorf("stopping it again: %w", os.NewSyscallError("kill", err))
		}
	}
	return nil
}

// release lets the prepared threads run.
func (t *task) release() error {
	for _, x := range t.threads {
		if err := x.tracee.Detach(); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	if err := t.tracee.Detach(); err != nil {
		return err
	}
	t.released = true
	t.closeHandles()
	return nil
}

// setFinalState ends injection into a thread with its image registers,
// FPU state and signal mask.
func setFinalState(r *remote.Remote, tr *ptrace.Tracee, th *ckpt.Thread) error {
	regs := wordsToRegs(th.Regs)
	restartSyscall(&regs, th.Syscall)
	if err := r.Finish(regs); err != nil {
		return fmt.Errorf("registers: %w", err)
	}
	if err := tr.SetXState(th.XState); err != nil {
		return fmt.Errorf("FPU state: %w", err)
	}
	if err := tr.SetSigMask(th.SigMask); err != nil {
		return fmt.Errorf("signal mask: %w", err)
	}
	return nil
}

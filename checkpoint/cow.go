package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
)

// A cowCopy is a copy-on-write copy of a frozen process's memory (or, held
// the same way, a helper forked in it: uncover.go): a child
// forked inside the process while it is frozen, held stopped under trace
// and never let run. Its private pages stay as they were at the fork while
// the process runs on, so they can be read after the thaw: the frozen
// phase pays for copying page tables, not pages.
//
// The child shares the process's fd table, filesystem context and System V
// semaphore undo list (CLONE_FILES, CLONE_FS, CLONE_SYSVSEM), so it holds
// no extra reference on any file (a pipe's reader still sees the end of
// the stream when the process closes its write end), and it has no exit
// signal, so the process is not sent SIGCHLD. When it is discarded it is
// killed and reaped; the last step runs a wait4 inside the process, since
// only a parent can reap its child. Between the fork and that wait4, a
// program that lists its children, or waits with __WALL, can see it.
type cowCopy struct {
	// pid is the copy's pid as crsub sees it (0 if it could not be
	// found), inner as its parent sees it, in its pid namespace.
	pid, inner int
	tracee     *ptrace.Tracee
	mem        *os.File // /proc/PID/mem of the copy
}

// forkCopy forks a copy of frozen process p's memory.
func forkCopy(p *proc) (copied *cowCopy, err error) {
	return forkHeld(p, unix.CLONE_FILES|unix.CLONE_FS|unix.CLONE_SYSVSEM)
}

// forkHeld forks a child of frozen process p with clone flags (and no exit
// signal) inside p, and holds it stopped under trace.
func forkHeld(p *proc, flags uint64) (copied *cowCopy, err error) {
	t := p.tracees[0]
	if err := t.TraceClones(true); err != nil {
		return nil, err
	}
	defer func() {
		if oerr := t.TraceClones(false); oerr != nil && err == nil {
			err = oerr
			if copied != nil {
				// Its clones would stop for a tracer that does not
				// expect them: no copy, and the process as it was.
				err = errors.Join(err, copied.discard(p.pid, t))
				copied = nil
			}
		}
	}()
	r, err := remote.New(t)
	if err != nil {
		return nil, err
	}
	// The call runs from a page of its own: the usual borrowing of the
	// code at the thread's instruction pointer would leave the borrowed
	// bytes in the copy's memory.
	if _, err := r.MapPage(0); err != nil {
		return nil, errors.Join(fmt.Errorf("mapping a scratch page in the process: %w", err), r.Restore())
	}
	child, cerr := r.Syscall(unix.SYS_CLONE, flags, 0, 0, 0, 0)
	if rerr := r.Restore(); rerr != nil && cerr == nil {
		cerr = rerr
	}
	if child == 0 {
		if cerr == nil {
			cerr = errors.New("clone returned no child")
		}
		return nil, fmt.Errorf("fork inside the process: %w", cerr)
	}
	// clone gives the child's pid in p's pid namespace, which need not be
	// crsub's.
	c := &cowCopy{inner: int(child)}
	host, herr := procfs.ChildWithNsPid(p.pid, c.inner)
	var aerr error
	if herr == nil {
		c.pid = host
		c.tracee, aerr = ptrace.Adopt(host)
	}
	if err := errors.Join(herr, aerr); err != nil {
		// A child that is not ours to hold must not run the process's
		// code: kill it (it is still a child of p, which the kernel reaps
		// for us only if p dies; reap it in p).
		if c.pid != 0 {
			_ = unix.Kill(c.pid, unix.SIGKILL)
		}
		return nil, errors.Join(fmt.Errorf("holding the forked copy %d: %w", child, err), c.reapIn(p.pid, t))
	}
	if cerr == nil {
		c.mem, cerr = os.Open(fmt.Sprintf("/proc/%d/mem", c.pid))
	}
	if cerr != nil {
		return nil, errors.Join(cerr, c.discard(p.pid, t))
	}
	return c, nil
}

// discard kills the copy and reaps it: first as its tracer, then inside
// parent, its real parent (through held if that is seized already).
func (c *cowCopy) discard(parent int, held *ptrace.Tracee) error {
	if c.mem != nil {
		c.mem.Close()
	}
	if c.pid == 0 {
		return c.reapIn(parent, held) // killed there
	}
	if err := unix.Kill(c.pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("killing the forked copy %d: %w", c.pid, os.NewSyscallError("kill", err))
	}
	if c.tracee != nil {
		for {
			if _, err := c.tracee.Wait(); err != nil {
				break // its death, or ECHILD once the kernel let it go
			}
		}
	}
	return c.reapIn(parent, held)
}

// reapIn runs wait4 for the copy inside its parent: it stops one thread of
// the parent for the length of a system call. held, if set, is a thread of
// the parent that is seized already (the tree is frozen).
func (c *cowCopy) reapIn(parent int, held *ptrace.Tracee) error {
	wait := func(t *ptrace.Tracee, gadget uint64) error {
		r, err := remote.New(t)
		if err != nil {
			return err
		}
		if gadget != 0 {
			r.UseSyscallAt(gadget)
		}
		if c.pid == 0 {
			// Not found from here: killed from inside too.
			_, _ = r.Syscall(unix.SYS_KILL, uint64(c.inner), uint64(unix.SIGKILL))
		}
		_, err = r.Syscall(unix.SYS_WAIT4, uint64(c.inner), 0, unix.WALL, 0)
		if errors.Is(err, unix.ECHILD) {
			err = nil // the program reaped it itself
		}
		return errors.Join(err, r.Restore())
	}
	if held != nil {
		if err := wait(held, 0); err != nil {
			return fmt.Errorf("reaping the forked copy %d in pid %d: %w", c.pid, parent, err)
		}
		return nil
	}
	tids, err := procfs.Tids(parent)
	if err != nil {
		return nil // the parent is gone, and its children went to a reaper
	}
	// The other threads run on: the call must not borrow their code.
	gadget, err := remote.FindSyscallInstruction(parent)
	if err != nil {
		return fmt.Errorf("reaping the forked copy %d in pid %d: %w", c.pid, parent, err)
	}
	// A thread whose call failed leaves the copy a zombie child of the
	// process, one more than it had: the next thread tries again.
	var errs []error
	for _, tid := range tids {
		t, serr := ptrace.Seize(tid, ptrace.SuspendSeccomp)
		if serr != nil {
			continue
		}
		err := errors.Join(wait(t, gadget), t.Detach())
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("thread %d: %w", tid, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("reaping the forked copy %d in pid %d: %w", c.pid, parent, errors.Join(errs...))
	}
	return fmt.Errorf("reaping the forked copy %d: no thread of pid %d could be stopped", c.pid, parent)
}

// cowable says whether m's pages can be read from the forked copy: private
// memory the fork copies as it was. Shared memory goes on changing in the
// copy too; a DONTFORK mapping is not in it and a WIPEONFORK one is empty
// there. Those are read while the process is frozen.
func cowable(m *procfs.Mapping, madvise []string) bool {
	if m.Shared {
		return false
	}
	switch m.Kind {
	case procfs.KindVdso, procfs.KindVvar, procfs.KindVvarVclock, procfs.KindVsyscall:
		return false
	}
	return !slices.Contains(madvise, ckpt.MadvDontFork) && !slices.Contains(madvise, ckpt.MadvWipeOnFork)
}

// forkCopies forks a copy of every process of the frozen tree; a process
// whose copy cannot be made is copied while frozen, and the log says why.
func (s *session) forkCopies() {
	for _, p := range s.procs {
		start := time.Now()
		c, err := forkCopy(p)
		if err != nil {
			s.log.Warn("no copy-on-write copy; the process's memory is copied while it is frozen", "pid", p.pid, "err", err)
			continue
		}
		p.cow = c
		s.log.Info("forked a copy-on-write copy", "pid", p.pid, "copy", c.pid, "took", time.Since(start))
	}
}

// discardCopies discards every forked copy.
func (s *session) discardCopies() error {
	var errs []error
	for _, p := range s.procs {
		if p.cow != nil {
			errs = append(errs, p.cow.discard(p.pid, nil))
			p.cow = nil
		}
	}
	return errors.Join(errs...)
}

// hasCopies says whether any process has a copy-on-write copy.
func (s *session) hasCopies() bool {
	for _, p := range s.procs {
		if p.cow != nil {
			return true
		}
	}
	return false
}

// zeroPagePFN finds the frame of the kernel's shared zero page, which a
// read of never-written anonymous memory maps: such pages of a process
// need not be read. 0 if pagemap does not tell (no CAP_SYS_ADMIN).
func zeroPagePFN() uint64 {
	ps := os.Getpagesize()
	b, err := unix.Mmap(-1, 0, ps, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0
	}
	defer unix.Munmap(b)
	if b[0] != 0 { // the read fault maps the zero page
		return 0
	}
	pm, err := procfs.OpenPagemap(os.Getpid())
	if err != nil {
		return 0
	}
	defer pm.Close()
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	var e [1]uint64
	entries, err := procfs.ReadPagemap(pm, addr, addr+uint64(ps), e[:])
	if err != nil || len(entries) != 1 {
		return 0
	}
	return procfs.PagemapEntry(entries[0]).PFN()
}

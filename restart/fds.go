package restart

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/imagefilter"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/substitute"
)

// restoreFile handles a file record. A file with a payload (a deleted
// file's contents) is restored now, in the process whose records are being
// read, as its bytes stream by; any other waits until an fd that is not
// substituted needs it, so that a replaced file (a rotated log, a gone
// socket) is never opened. A file that cannot be restored is not an error
// yet: the error is reported with the fd that needs it, so it can name the
// fd.
func (s *restorer) restoreFile(rec *ckpt.Record) error {
	var f ckpt.File
	if err := rec.Decode(&f); err != nil {
		return err
	}
	if s.current == nil {
		return errors.New("file record before any process record")
	}
	g := &globalFile{file: f, deps: rec.Deps, pending: true}
	s.opened[rec.Objref] = g
	if rec.PayloadLen > 0 && !f.Supplied && !f.External {
		s.current.openNow(g, rec.Objref, rec)
	}
	return nil
}

// globalFile is a file record of the image: where it was opened first, or
// why it could not be.
type globalFile struct {
	file    ckpt.File
	deps    []ckpt.Objref
	pending bool  // not opened yet
	err     error // why it could not be restored
	owner   *task // the task that opened it; others get copies
}

// openNow restores a pending file inside the task.
func (t *task) openNow(g *globalFile, ref ckpt.Objref, rec *ckpt.Record) {
	g.pending = false
	f := &g.file
	switch {
	case f.Supplied:
		g.err = errors.New("the image says this file is supplied at restart, and nothing supplied it")
		return
	case f.External && !t.s.files.NewTerminalFor(f):
		g.err = fmt.Errorf("%w: %s", files.ErrExternal, f.ExternalReason)
		return
	}
	kind, err := files.ForFile(f.Kind)
	if err != nil {
		g.err = err
		return
	}
	var fd int
	err = t.inSocketNetNamespace(f, func() error {
		fd, err = kind.Restore(t.s.files, t, rec, f)
		return err
	})
	if err != nil {
		g.err = err
		return
	}
	g.owner = t
	of := &openFile{fd: fd}
	t.files[ref] = of
	t.Hold(&of.fd)
}

// fileFor returns the task's own fd for a file: opened here, or a copy of
// the one another process of the tree opened, sharing its open file
// description as the image says.
func (t *task) fileFor(ref ckpt.Objref, g *globalFile) (*openFile, error) {
	if of := t.files[ref]; of != nil {
		return of, nil
	}
	if g.pending {
		t.openNow(g, ref, &ckpt.Record{Type: ckpt.TypeFile, Objref: ref, Deps: g.deps})
	}
	if g.err != nil {
		return nil, g.err
	}
	if of := t.files[ref]; of != nil {
		return of, nil
	}
	local, err := g.owner.Copy(g.owner.files[ref].fd)
	if err != nil {
		return nil, fmt.Errorf("copying the file from pid %d: %w", g.owner.pid, err)
	}
	defer local.Close()
	fd, err := t.takeLocal(int(local.Fd()))
	if err != nil {
		return nil, err
	}
	of := &openFile{fd: fd}
	t.files[ref] = of
	t.Hold(&of.fd)
	return of, nil
}

// placeFd puts what belongs at an fd number there: the caller's preserved
// fd, a substitute, or the restored file.
func (t *task) placeFd(fd *ckpt.Fd) error {
	if t.sharesFdTable {
		return errors.New("the process shares its parent's fd table, which has the fds")
	}
	g := t.s.opened[fd.File]
	if g == nil {
		return fmt.Errorf("its file (objref %d) was not restored", fd.File)
	}
	if _, dup := t.placed[fd.Fd]; dup {
		return errors.New("the fd appears twice in the process")
	}
	switch src, ok := t.substitutes[fd.Fd]; {
	case ok:
		if err := t.placeSubstitute(fd, &g.file, src); err != nil {
			return err
		}
		t.placed[fd.Fd] = fd.File
		t.supplies(fd, g)
		return nil
	case t.preserved[fd.Fd]:
		// The caller's own fd stays; only the image's close-on-exec flag
		// applies, as a launcher handing fds across exec clears it.
		flag := uint64(0)
		if fd.Cloexec {
			flag = unix.FD_CLOEXEC
		}
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd.Fd), unix.F_SETFD, flag); err != nil {
			return fmt.Errorf("keeping the caller's preserved fd: %w", err)
		}
		t.s.log.Info("keeping the caller's preserved fd instead of the image's", "pid", t.pid, "fd", fd.Fd)
		t.placed[fd.Fd] = fd.File
		t.supplies(fd, g)
		return nil
	}
	if g.file.Supplied && g.owner != nil {
		t.s.log.Info("an fd that shared a replaced fd's open file shares what replaced it", "pid", t.pid, "fd", fd.Fd, "from-pid", g.owner.pid)
	}
	of, err := t.fileFor(fd.File, g)
	if err != nil {
		return &FileError{Kind: g.file.Kind, Path: g.file.Path, Err: err}
	}
	if err := t.makeRoom(fd.Fd, &of.fd); err != nil {
		return err
	}
	src := of.fd
	if err := t.dupTo(src, fd.Fd, fd.Cloexec); err != nil {
		return err
	}
	t.placed[fd.Fd] = fd.File
	if !of.placed {
		of.placed = true
		t.Unhold(&of.fd)
		if src != fd.Fd {
			if _, err := t.Syscall(unix.SYS_CLOSE, uint64(src)); err != nil {
				return err
			}
		}
		of.fd = fd.Fd
		if err := files.RestoreExtras(t, fd.Fd, &g.file, t.s.innerPid); err != nil {
			return err
		}
	}
	return nil
}

// supplies makes what now sits at fd (a substitute, or the caller's
// preserved fd) the open file of a file record supplied at restart, for
// the fds placed after it that shared the replaced one.
func (t *task) supplies(fd *ckpt.Fd, g *globalFile) {
	if !g.file.Supplied || g.owner != nil || t.files[fd.File] != nil {
		return
	}
	g.pending, g.owner = false, t
	t.files[fd.File] = &openFile{fd: fd.Fd, placed: true}
}

// restoreLocks takes the task's file locks again, once per file, after
// every temporary fd is closed (closing any fd of a file drops the
// process's POSIX locks on it).
func (t *task) restoreLocks() error {
	done := map[ckpt.Objref]bool{}
	for number, ref := range t.placed {
		g := t.s.opened[ref]
		if g == nil || len(g.file.Locks) == 0 || done[ref] || t.preserved[number] {
			continue
		}
		if _, sub := t.substitutes[number]; sub {
			continue
		}
		done[ref] = true
		if err := files.RestoreLocks(t, t.pid, number, &g.file); err != nil {
			return fmt.Errorf("fd %d (%s): %w", number, g.file.Path, err)
		}
	}
	return nil
}

// makeRoom moves any other object still waiting at number out of the way.
func (t *task) makeRoom(number int, keep *int) error {
	for held := range t.held {
		if *held == number && held != keep {
			moved, err := t.Syscall(unix.SYS_FCNTL, uint64(number), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("moving fd %d out of the way: %w", number, err)
			}
			if _, err := t.Syscall(unix.SYS_CLOSE, uint64(number)); err != nil {
				return err
			}
			*held = int(moved)
		}
	}
	return nil
}

// dupTo makes target fd number refer to src's file, with the close-on-exec
// flag given.
func (t *task) dupTo(src, number int, cloexec bool) error {
	if src == number {
		flag := uint64(0)
		if cloexec {
			flag = unix.FD_CLOEXEC
		}
		_, err := t.Syscall(unix.SYS_FCNTL, uint64(src), unix.F_SETFD, flag)
		return err
	}
	flags := uint64(0)
	if cloexec {
		flags = unix.O_CLOEXEC
	}
	if _, err := t.Syscall(unix.SYS_DUP3, uint64(src), uint64(number), flags); err != nil {
		return fmt.Errorf("dup3 %d to %d: %w", src, number, err)
	}
	return nil
}

// placeSubstitute opens src here with the image fd's flags and hands it to
// the task, which takes it with pidfd_getfd.
func (t *task) placeSubstitute(fd *ckpt.Fd, image *ckpt.File, src substitute.Source) error {
	opts := substitute.DefaultOpenOptions()
	opts.Flags = image.Flags
	opts.FDFlags = 0
	opts.Held = true
	if fd.Cloexec {
		opts.FDFlags = unix.FD_CLOEXEC
	}
	// A file the spec creates is the process's, as if it had opened it.
	creds := t.process.Creds
	opts.Creator = &substitute.Creator{Umask: os.FileMode(t.process.Umask), UID: int(creds.Uid[3]), GID: int(creds.Gid[3])}
	local, opened, err := src.Open(opts)
	if err != nil {
		return err // an *substitute.OpenError or *SpecError, naming src
	}
	defer unix.Close(local)
	t.s.substitutes = append(t.s.substitutes, opened)
	if opened.Process != nil {
		t.s.children = append(t.s.children, opened.Process)
	}
	if opened.Hold != nil {
		t.s.holds = append(t.s.holds, opened.Hold)
	}
	taken, err := t.takeLocal(local)
	if err != nil {
		return &substitute.OpenError{Target: -1, Spec: src.String(), Err: fmt.Errorf("handing it to the task: %w", err)}
	}
	t.Hold(&taken)
	defer t.Unhold(&taken)
	if err := t.makeRoom(fd.Fd, &taken); err != nil {
		return err
	}
	if err := t.dupTo(taken, fd.Fd, fd.Cloexec); err != nil {
		return err
	}
	if taken != fd.Fd {
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(taken)); err != nil {
			return err
		}
	}
	t.substituted[fd.Fd] = opened
	t.s.log.Info("substituted", "pid", t.pid, "fd", fd.Fd, "source", opened.Desc)
	return nil
}

// takeLocal makes the task take a copy of one of crsub's own fds: it runs
// pidfd_getfd on a pidfd of crsub, so any kind of file (sockets too)
// crosses over with its open file description. The pidfd is inherited from
// crsub (a task could not open one inside a new pid namespace, where crsub
// has no pid).
func (t *task) takeLocal(local int) (int, error) {
	if t.inUserNamespace() {
		return t.passLocal(local) // it may not (passfd.go)
	}
	if t.callerPidfd < 0 {
		return -1, errors.New("the task has no pidfd of crsub")
	}
	got, err := t.Syscall(unix.SYS_PIDFD_GETFD, uint64(t.callerPidfd), uint64(local), 0)
	if err != nil {
		return -1, err
	}
	return int(got), nil
}

// checkSubstitutions fails a restart whose substitutes or explicitly
// preserved fds name an fd the image does not have. (The fds sharing a
// replaced one's open file share what replaced it: see filterInline.)
func (s *restorer) checkSubstitutions() error {
	root := s.tasks[0].pid
	for pid := range s.opts.ProcessSubstitutes {
		if _, err := s.task(pid); err != nil {
			return &SubstituteError{Pid: pid, Fd: -1, Root: root, Err: errors.New("the image has no such process")}
		}
	}
	for _, t := range s.tasks {
		for fd := range t.substitutes {
			if _, ok := t.placed[fd]; !ok {
				return &SubstituteError{Pid: t.pid, Fd: fd, Root: root, Err: errNoSuchFd}
			}
		}
	}
	t := s.tasks[0]
	for _, fd := range s.opts.Preserve {
		if _, ok := t.placed[fd]; !ok {
			return &SubstituteError{Pid: t.pid, Fd: fd, Root: root, Inherited: true, Err: errNoSuchFd}
		}
	}
	return nil
}

// openLater puts the files that could only be opened once every task
// exists (RestoreContext.Later: pidfds, /dev/tty) where their placeholders
// are, keeping each fd's close-on-exec flag.
func (t *task) openLater(fc *files.RestoreContext) error {
	for n, ref := range t.placed {
		open, ok := fc.Later[ref]
		if !ok || t.preserved[n] {
			continue
		}
		if _, substituted := t.substitutes[n]; substituted {
			continue
		}
		fdFlags, err := t.Syscall(unix.SYS_FCNTL, uint64(n), unix.F_GETFD)
		if err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
		newFd, err := open(t)
		if err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
		dupFlags := uint64(0)
		if fdFlags&unix.FD_CLOEXEC != 0 {
			dupFlags = unix.O_CLOEXEC
		}
		_, err = t.Syscall(unix.SYS_DUP3, uint64(newFd), uint64(n), dupFlags)
		if _, cerr := t.Syscall(unix.SYS_CLOSE, uint64(newFd)); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
	}
	return nil
}

// settleFiles sets what the kinds left for the end on this task's restored
// files (RestoreContext.Settle), each file once.
func (t *task) settleFiles(fc *files.RestoreContext) error {
	for n, ref := range t.placed {
		settle, ok := fc.Settle[ref]
		if !ok || t.preserved[n] {
			continue
		}
		if _, substituted := t.substitutes[n]; substituted {
			continue
		}
		delete(fc.Settle, ref)
		if err := settle(t, n); err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
	}
	return nil
}

// filterInline runs the image through the image filter, replacing every
// fd of the root that gets a substitute or is inherited from the caller, so
// the restart sees exactly what `crsub filter --replace` would give it: the
// replaced files are "supplied at restart", never opened, and a rule that
// matches nothing fails. The fds that share a replaced fd's open file and
// come after it share its substitute; one that comes before it needs a
// rule of its own.
// The filter runs in a goroutine writing into a pipe the restart reads.
func (s *restorer) filterInline(src io.Reader) (io.Reader, func() error) {
	var rules []imagefilter.Rule
	for fd := range s.opts.Substitutes {
		rules = append(rules, imagefilter.Rule{Fd: fd, Action: imagefilter.Replace})
	}
	for pid, subs := range s.opts.ProcessSubstitutes {
		for fd := range subs {
			rules = append(rules, imagefilter.Rule{Pid: pid, Fd: fd, Action: imagefilter.Replace})
		}
	}
	for _, fd := range s.opts.Preserve {
		rules = append(rules, imagefilter.Rule{Fd: fd, Action: imagefilter.Replace})
	}
	if len(rules) == 0 {
		return src, func() error { return nil }
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		fopts := imagefilter.DefaultOptions()
		fopts.Log = s.log
		// An fd that shares the replaced fd's open file (a child's
		// inherited stdout, 2>&1) shares its substitute too.
		fopts.ReplaceShared = true
		_, err := imagefilter.Filter(pw, src, rules, fopts)
		pw.CloseWithError(err)
		done <- err
	}()
	return pr, func() error {
		pr.CloseWithError(errors.New("done reading"))
		if err := <-done; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			var re *imagefilter.RuleError
			if errors.As(err, &re) {
				return err
			}
		}
		return nil
	}
}

// errNoSuchFd says a substitute or inherited fd names an fd the image lacks.
var errNoSuchFd = errors.New("the image has no such fd")

// substituteError makes an image filter's rule error, which the inline
// filter's Replace rules give for a substitute or inherited fd, a
// *SubstituteError naming the fd as the options did.
func (s *restorer) substituteError(err error) error {
	var re *imagefilter.RuleError
	if !errors.As(err, &re) {
		return err
	}
	e := &SubstituteError{Pid: re.Pid, Fd: re.Rule.Fd, Err: re.Err}
	if len(s.tree.Processes) > 0 {
		e.Root = s.tree.Processes[0].Pid
	}
	if re.Rule.Pid == 0 || re.Rule.Pid == e.Root {
		_, substituted := s.opts.Substitutes[e.Fd]
		e.Inherited = !substituted && slices.Contains(s.opts.Preserve, e.Fd)
	}
	return e
}

// take gives target `to` a copy of one of crsub's own fds.
func take(local int, to files.Target) (int, error) {
	t, ok := to.(*task)
	if !ok {
		return -1, fmt.Errorf("cannot hand an fd to %T", to)
	}
	return t.takeLocal(local)
}

// transfer gives target `to` a copy of fd of another task of the tree.
func (s *restorer) transfer(fromPid, fd int, to files.Target) (int, error) {
	from, err := s.task(fromPid)
	if err != nil {
		return -1, err
	}
	local, err := from.Copy(fd)
	if err != nil {
		return -1, err
	}
	defer local.Close()
	t, ok := to.(*task)
	if !ok {
		return -1, fmt.Errorf("cannot hand an fd to %T", to)
	}
	return t.takeLocal(int(local.Fd()))
}

// openFile gives target `to` an fd on the file of a file record read
// before (RestoreContext.Open), restoring it first if no task has yet.
func (s *restorer) openFile(ref ckpt.Objref, to files.Target) (int, error) {
	t, ok := to.(*task)
	if !ok {
		return -1, fmt.Errorf("cannot hand an fd to %T", to)
	}
	g := s.opened[ref]
	if g == nil {
		return -1, fmt.Errorf("file objref %d is not in the image before it", ref)
	}
	of, err := t.fileFor(ref, g)
	if err != nil {
		return -1, err
	}
	return of.fd, nil
}

// closeInheritedFds closes what the new task inherited from this process,
// except the fds the caller preserves.
func (t *task) closeInheritedFds() error {
	keep := make([]int, 0, len(t.preserved)+1)
	for fd := range t.preserved {
		keep = append(keep, fd)
	}
	if t.callerPidfd >= 0 && !t.preserved[t.callerPidfd] {
		keep = append(keep, t.callerPidfd)
	}
	sort.Ints(keep)
	lo := uint64(0)
	closeRange := func(first, last uint64) error {
		if _, err := t.Syscall(unix.SYS_CLOSE_RANGE, first, last, 0); err != nil {
			return fmt.Errorf("closing inherited fds %d-%d: %w", first, last, err)
		}
		return nil
	}
	for _, k := range keep {
		if uint64(k) > lo {
			if err := closeRange(lo, uint64(k)-1); err != nil {
				return err
			}
		}
		lo = uint64(k) + 1
	}
	return closeRange(lo, 1<<32-1)
}

// inSocketNetNamespace runs fn, which restores file f in t, with t in the
// network namespace of the image f is a socket of, if it is not t's: a
// socket is made in its maker's namespace and stays in it (an abstract
// name it binds is that namespace's).
func (t *task) inSocketNetNamespace(f *ckpt.File, fn func() error) error {
	if f.Socket == nil || f.Socket.NetNS == 0 {
		return fn()
	}
	var sockNS *ns.Restored
	for _, n := range t.s.ns.made {
		if n.Kind.Name == ckpt.NamespaceNet && n.Record.Inode == f.Socket.NetNS {
			sockNS = n
		}
	}
	if sockNS == nil || sockNS.Ref == t.process.Namespaces[ckpt.NamespaceNet] {
		return fn()
	}
	own, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", t.host))
	if err != nil {
		return err
	}
	defer own.Close()
	back, err := t.takeLocal(int(own.Fd()))
	if err != nil {
		return err
	}
	defer t.Syscall(unix.SYS_CLOSE, uint64(back))
	into, err := t.takeLocal(int(sockNS.File().Fd()))
	if err != nil {
		return err
	}
	defer t.Syscall(unix.SYS_CLOSE, uint64(into))
	if _, err := t.Syscall(unix.SYS_SETNS, uint64(into), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering network namespace %d, the socket's: %w", f.Socket.NetNS, err)
	}
	ferr := fn()
	if _, err := t.Syscall(unix.SYS_SETNS, uint64(back), unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("back in its own network namespace: %w", err))
	}
	return ferr
}

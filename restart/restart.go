package restart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/preserve"
	"github.com/crsub/crsub/substitute"
)

// Process is a restored process tree, running.
type Process struct {
	// Pid is the root process's pid, the same as when it was checkpointed.
	Pid int
	// Pids lists every restored process, root first.
	Pids []int
	// Substituted describes what was placed at each substituted fd.
	Substituted map[int]substitute.Opened
}

// Wait waits for the root process to exit and returns its wait status. The
// restored root is a child of the calling process.
func (p *Process) Wait() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("wait4", err)
		}
		return ws, nil
	}
}

// Signal sends sig to the root process.
func (p *Process) Signal(sig unix.Signal) error {
	return unix.Kill(p.Pid, sig)
}

// Restart reads an image from r and restores the processes it holds. They
// run when Restart returns; on error nothing it created is left behind.
func Restart(ctx context.Context, r io.Reader, opts Options) (*Process, error) {
	p, err := ptrace.OnTracerThread(func() (*Process, error) { return run(ctx, r, opts) })
	if opts.Root != "" && errors.As(err, new(*RecordError)) && errors.Is(err, os.ErrNotExist) {
		// The path is the image's, looked up in the root given.
		err = fmt.Errorf("%w (in the root given, %s)", err, opts.Root)
	}
	return p, err
}

// restorer is one restart in progress.
type restorer struct {
	opts   Options
	log    *slog.Logger
	header ckpt.Header
	tree   ckpt.Tree
	tasks  []*task
	files  *files.RestoreContext
	// pageBuf carries page data from the image to a task; cmpBuf holds
	// what an inherited mapping has there, to compare.
	pageBuf, cmpBuf []byte
	// preserved lists the caller's fds kept in the root process.
	preserved map[int]bool
	// children are processes started for substitutes (exec:), stopped
	// if the restart fails; holds keep their commands from running
	// until the tasks are (a crsub killed before leaves none running).
	children []*os.Process
	holds    []*substitute.Hold
	// substitutes are the substitutes opened, whose files (a socket's, a
	// file created) a failed restart removes.
	substitutes []substitute.Opened
	// opened holds every file record by objref.
	opened map[ckpt.Objref]*globalFile
	// current is the task whose records are being read.
	current *task
	// parent holds the pages of the image chain an incremental image
	// takes its unchanged pages from.
	parent *ckpt.PageIndex
	// pagesRead counts page bytes restored, for Options.Progress.
	pagesRead int64
	// selfPidfd is a pidfd of crsub, open before the first task is
	// created so that every task inherits it.
	selfPidfd int
	// spool reads the image ahead while a pid is held by the frozen
	// original of a streaming checkpoint.
	spool *spool
	// shmem maps a shared memory object (its inode at checkpoint) to the
	// mapping that recreated it.
	shmem map[uint64]shmemOwner
	// cgroups reaches the cgroup hierarchies tasks are moved in;
	// cgroupRoots are the roots the image records for each.
	cgroups     cgroup.Hierarchies
	cgroupRoots map[string][]string
	// groupLeaders are the stand-ins, by pgid, for process group leaders
	// that are gone, while the groups' members join them (tree.go).
	groupLeaders map[int]*task
	// sessionHelpers fork the processes born in a session none of their
	// ancestors is in; sessionMakers, by sid, make such a session when no
	// live process of the image is in it yet (session.go).
	sessionHelpers []*sessionHelper
	sessionMakers  map[int]*task
	// setsidAfterFork are the session leaders that fork some children
	// before their setsid (ckpt.Tree.SetsidAfterFork).
	setsidAfterFork map[int]bool
	// ns are the image's namespaces (namespaces.go).
	ns namespaces
}

// phaseNetworkRelease lets the packets of the network namespaces the
// restart holds still through, once every task is rebuilt: a step of the
// whole restart, not of one task.
const phaseNetworkRelease = "letting the namespaces' packets through"

func run(ctx context.Context, src io.Reader, opts Options) (_ *Process, err error) {
	s := &restorer{opts: opts, log: opts.Log, files: &files.RestoreContext{Pipes: map[ckpt.Objref]*files.RestoredPipe{}, Later: map[ckpt.Objref]func(files.Target) (int, error){}}}
	defer s.files.Close()
	s.files.InTree = func(pid int) bool { return s.treeProcess(pid) != nil }
	s.files.InnerPid = s.innerPid
	s.files.HostPid = s.hostPid
	s.files.TCPClose = opts.TCPClose
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.opened = map[ckpt.Objref]*globalFile{}
	s.shmem = map[uint64]shmemOwner{}
	s.groupLeaders = map[int]*task{}
	s.sessionMakers = map[int]*task{}
	s.ns = namespaces{records: map[ckpt.Objref]*ckpt.Namespace{}, made: map[ckpt.Objref]*ns.Restored{}, supplied: map[string]*os.File{},
		ctx: &ns.RestoreContext{Log: s.log, Files: s.files, Links: opts.Links, NetworkAsGiven: opts.NetworkAsGiven, PeerWait: opts.PidWait, Root: opts.Root, MountMap: opts.MountMap,
			MoveToCgroups: func(host int, cgs []ckpt.Cgroup) error { return s.moveToCgroups(host, host, cgs, false) }}}
	defer s.closeNamespaces()
	s.files.InIPCNamespace = func(t files.Target) func(func() error) error {
		if n := s.ns.made[t.(*task).process.Namespaces[ckpt.NamespaceIPC]]; n != nil {
			return n.Do
		}
		return nil
	}
	s.files.HostPath = func(t files.Target, path string) string { return t.(*task).hostPath(path) }
	s.files.NewDevice = func(t files.Target, dev uint64) (uint64, bool) { return t.(*task).newDevice(dev) }
	s.files.InMountNamespace = s.inMountNamespace
	s.files.PtyMaster = func(t files.Target, index int) *os.File {
		if n := t.(*task).mountNamespace(); n != nil {
			return n.PtyMaster(index)
		}
		return nil
	}
	s.files.MovedDevice = func(t files.Target, dev uint64) (uint64, bool) { return t.(*task).movedDevice(dev) }
	s.files.ProcPidNamespace = func(t files.Target, dev uint64) (*os.File, bool) { return t.(*task).procPidNamespace(dev) }
	s.files.Transfer = s.transfer
	s.files.Take = take
	s.files.NewTerminal = opts.NewTerminal
	s.files.Open = s.openFile
	s.preserved = map[int]bool{}
	for _, fd := range append(opts.Preserve, preserve.List()...) {
		s.preserved[fd] = true
	}
	fault.Phase("planning")
	self, err := sys.PidfdOpen(os.Getpid())
	if err != nil {
		return nil, err
	}
	defer self.Close()
	s.selfPidfd = self.Int()
	s.spool = newSpool(src)
	defer s.spool.close()
	src, stopFilter := s.filterInline(s.spool)
	defer func() {
		// A rule the image does not allow is the reason the restart
		// failed, whatever the reader saw of it: say it in restart's terms.
		if ferr := stopFilter(); ferr != nil && err != nil {
			err = s.substituteError(ferr)
		}
	}()
	rd, err := ckpt.NewReader(src)
	if err != nil {
		return nil, err
	}
	s.header = rd.Header()
	if err := s.openParent(); err != nil {
		return nil, err
	}
	if s.parent != nil {
		defer s.parent.Close()
	}

	// Plan: the tree comes first, before any per-task state.
	if err := s.plan(rd); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The root task is created when its process record comes, after the
	// namespace records. From here on, a failure kills every task and
	// removes the cgroups made for them.
	s.removeAbandonedCgroups()
	s.journalFiles()
	defer func() {
		if err == nil {
			// The cgroups made are the restored tasks' now.
			if kerr := s.cgroups.Keep(); kerr != nil {
				s.log.Warn("cannot remove the list of the cgroups made", "err", kerr)
			}
		}
		if cerr := s.cgroups.Close(); cerr != nil {
			s.log.Warn("cannot unmount the cgroup hierarchies used", "err", cerr)
		}
	}()
	defer func() {
		if err != nil {
			if fault.Enabled {
				defer fault.Suspend()()
			}
			s.killAll()
			if nerr := s.ns.ctx.Failed(); nerr != nil {
				s.log.Warn("cannot undo all that was done to the namespaces", "err", nerr)
			}
			s.files.Abandon()
			if cerr := s.cgroups.RemoveCreated(); cerr != nil {
				s.log.Warn("cannot remove the cgroups made for the restart", "err", cerr)
			}
		}
	}()
	// Rebuild the tree record by record, as the image streams: each
	// process is forked by its parent when its record arrives (the root
	// created), then its memory and files are rebuilt inside it.
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break // trailer verified
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if rec.Type == ckpt.TypeProcess && len(s.tasks) == 0 {
			// The root, created when its record comes, after the
			// namespaces': failing, the restart fails, not the record.
			var p ckpt.Process
			if err := rec.Decode(&p); err != nil {
				return nil, s.recordError(rec, err)
			}
			fault.Phase("creating the root task")
			if _, err := s.createRoot(&p); err != nil {
				if errors.As(err, new(*PidInUseError)) || errors.As(err, new(*TaskError)) {
					return nil, err // they name the pid
				}
				return nil, &TaskError{Pid: p.Pid, Phase: "creating the root task", Err: err}
			}
		}
		if fault.Enabled {
			fault.Phase("record " + rec.Type.String())
		}
		if err := s.apply(rec); err != nil {
			return nil, s.recordError(rec, err)
		}
	}

	// The last process's memory may be the image's last records: the file
	// its mappings kept open goes now.
	fault.Phase("rebuilding its memory")
	for _, t := range s.tasks {
		if err := t.closeMappedFile(); err != nil {
			return nil, &TaskError{Pid: t.pid, Phase: "rebuilding its memory", Err: err}
		}
	}

	// Every substitute and preserved fd asked for must have matched.
	if err := s.checkSubstitutions(); err != nil {
		return nil, err
	}

	// Zombies, process groups, then signals, process and thread state,
	// then registers, then release. Groups whose leader is gone get a
	// stand-in for it while their members, zombies first, join them.
	fault.Phase("ending the session helpers")
	if err := s.endSessionHelpers(); err != nil {
		return nil, err
	}
	fault.Phase("standing in for gone group leaders")
	if err := s.makeGoneLeaders(); err != nil {
		return nil, err
	}
	fault.Phase("creating zombies")
	if err := s.createZombies(); err != nil {
		return nil, err
	}
	if opts.TasksCreated != nil {
		if err := opts.TasksCreated(s.pids()); err != nil {
			return nil, fmt.Errorf("tasks-created hook: %w", err)
		}
	}
	fault.Phase("joining its process group")
	for _, t := range s.live() {
		if err := t.joinGroup(); err != nil {
			return nil, &TaskError{Pid: t.pid, Phase: "joining its process group", Err: err}
		}
	}
	fault.Phase("ending the stand-ins")
	if err := s.endGoneLeaders(); err != nil {
		return nil, err
	}
	s.warnOtherSessions()
	// Sessions get their terminals back before any task's files that
	// open them (/dev/tty) are.
	fault.Phase("restoring the controlling terminal")
	for _, t := range s.live() {
		t.restoreCtty()
	}
	fault.Phase("rebuilding its state")
	for _, t := range s.live() {
		if err := t.finish(s.files); err != nil {
			return nil, &TaskError{Pid: t.pid, Phase: "rebuilding its state", Err: err}
		}
	}
	// Every file is open: what crsub kept for them (the pipes' anchors,
	// ghosts, removed directories, FIFOs) goes before the tasks run.
	s.files.Close()
	if opts.BeforeRelease != nil {
		if err := opts.BeforeRelease(s.pids()); err != nil {
			return nil, fmt.Errorf("before-release hook: %w", err)
		}
	}
	// The network namespaces restored are held still until now.
	fault.Phase(phaseNetworkRelease)
	if err := s.ns.ctx.Running(); err != nil {
		return nil, fmt.Errorf("%s: %w", phaseNetworkRelease, err)
	}
	fault.Phase("releasing")
	// Everything that can fail is done before any task runs. Then children
	// first: a parent released first could see a child that is still
	// stopped.
	live := s.live()
	for i := len(live) - 1; i >= 0; i-- {
		if err := live[i].prepareRelease(); err != nil {
			return nil, &TaskError{Pid: live[i].pid, Phase: "releasing", Err: err}
		}
	}
	for _, h := range s.holds {
		if err := h.Release(); err != nil {
			return nil, fmt.Errorf("releasing: %w", err)
		}
	}
	for i := len(live) - 1; i >= 0; i-- {
		if err := live[i].release(); err != nil {
			// The tasks let go run as restored for an instant, alone:
			// they go too, with the rest (killAll).
			for _, t := range live[i+1:] {
				t.end()
			}
			return nil, &TaskError{Pid: live[i].pid, Phase: "releasing", Err: err}
		}
	}
	s.log.Info("restart complete", "pids", s.pids())
	// The commands run on, children of the caller; their pidfds go now,
	// not whenever the collector finds them.
	for _, p := range s.children {
		_ = p.Release()
	}
	return &Process{Pid: s.tasks[0].host, Pids: s.pids(), Substituted: s.tasks[0].substituted}, nil
}

func (s *restorer) plan(rd *ckpt.Reader) error {
	h := s.header
	if h.Arch != runtime.GOARCH {
		return fmt.Errorf("image is for %s, this machine is %s", h.Arch, runtime.GOARCH)
	}
	if h.PageSize != os.Getpagesize() {
		return fmt.Errorf("image has %d-byte pages, this machine %d", h.PageSize, os.Getpagesize())
	}
	rec, err := rd.Next()
	if err == io.EOF {
		return errors.New("image holds no task tree")
	}
	if err != nil {
		return err
	}
	if rec.Type != ckpt.TypeTree {
		return fmt.Errorf("image record %d is %s, want the task tree first", rec.Index, rec.Type)
	}
	if err := rec.Decode(&s.tree); err != nil {
		return err
	}
	if len(s.tree.Processes) == 0 {
		return errors.New("image's task tree is empty")
	}
	s.setsidAfterFork = s.tree.SetsidAfterFork()
	if s.opts.PidNamespace {
		// The root is the init of the new namespace: its orphans are
		// forked from their sessions (session.go).
		delete(s.setsidAfterFork, s.tree.Processes[0].Pid)
	}
	return checkTree(&s.tree)
}

// openParent opens the chain of images an incremental image refers to,
// refusing a missing one, or one that is not what the image was made
// against.
func (s *restorer) openParent() error {
	h := s.header
	if h.Parent == "" {
		return nil
	}
	path := s.opts.Parent
	if path == "" {
		path = h.Parent
		if !filepath.IsAbs(path) && s.opts.ImageDir != "" {
			path = filepath.Join(s.opts.ImageDir, path)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("the image is incremental to %s: %w", h.Parent, err)
	}
	ix, ph, err := ckpt.OpenChain(path)
	if err != nil {
		return fmt.Errorf("the image is incremental to %s: %w", h.Parent, err)
	}
	if st.Size() != h.ParentSize || !ph.Created.Equal(h.ParentCreated) {
		ix.Close()
		return fmt.Errorf("parent image %s is not the one this image was made against (size %d, created %s; want size %d, created %s)",
			path, st.Size(), ph.Created.Format("2006-01-02 15:04:05.000"), h.ParentSize, h.ParentCreated.Format("2006-01-02 15:04:05.000"))
	}
	s.parent = ix
	return nil
}

// createRoot creates the root task, for its process record p, in its
// namespaces; the others are forked by their parents as their records
// arrive (see tree.go).
func (s *restorer) createRoot(p *ckpt.Process) (*task, error) {
	if p.Pid != s.tree.Processes[0].Pid {
		return nil, fmt.Errorf("the first process record is pid %d's, not the root's (%d)", p.Pid, s.tree.Processes[0].Pid)
	}
	if err := s.openSupplied(); err != nil {
		return nil, err
	}
	flags := s.cloneFlags(p, nil)
	t, err := createTask(p.Pid, flags, s)
	if err != nil {
		return nil, err
	}
	s.tasks = append(s.tasks, t)
	t.process = p
	fault.Phase("entering its namespaces")
	if err := s.enterNamespaces(t, p, flags); err != nil {
		return nil, &TaskError{Pid: t.pid, Phase: "entering its namespaces", Err: err}
	}
	return t, nil
}

// live lists the tasks that are not zombies, in creation order.
func (s *restorer) live() []*task {
	var out []*task
	for _, t := range s.tasks {
		if !t.released {
			out = append(out, t)
		}
	}
	return out
}

// pids lists the tasks' pids as crsub sees them.
func (s *restorer) pids() []int {
	out := make([]int, len(s.tasks))
	for i, t := range s.tasks {
		out[i] = t.host
	}
	return out
}

// innerPid is the pid a process of the image has in its own pid namespace
// at restart: its own, unless it is in a pid namespace the image records,
// where it has the one it had there, or the tree gets a new namespace,
// where the root is 1 and the others keep theirs (or the ones they had in
// the namespace they were checkpointed in).
func (s *restorer) innerPid(pid int) int {
	if !s.opts.PidNamespace && !s.recordsPidNamespaces() {
		return pid
	}
	tp := s.treeProcess(pid)
	switch {
	case tp != nil && tp.NsPid != 0:
		return tp.NsPid
	case s.opts.PidNamespace && pid == s.tree.Processes[0].Pid:
		return 1
	case tp == nil && s.groupNsPid(pid) != 0:
		return s.groupNsPid(pid)
	}
	return pid
}

// groupNsPid is, for the pid of a process group leader that is not in the
// image (gone), the group's id in the pid namespace of the image its
// members are in; 0 if none says.
func (s *restorer) groupNsPid(pgid int) int {
	for _, tp := range s.tree.Processes {
		if tp.Pgid == pgid && tp.NsPgid != 0 {
			return tp.NsPgid
		}
	}
	return 0
}

// recordsPidNamespaces says whether the pid namespaces the tree's
// processes were in are the image's own (restored as they were), rather
// than one the whole tree was in without its init (its processes' NsPid
// are then only used with Options.PidNamespace).
func (s *restorer) recordsPidNamespaces() bool {
	return s.tree.Processes[0].NsPid <= 1
}

// inPidNamespace says whether process pid is in a pid namespace below
// crsub's at restart.
func (s *restorer) inPidNamespace(pid int) bool {
	tp := s.treeProcess(pid)
	return s.opts.PidNamespace || (tp != nil && tp.NsPid != 0 && s.recordsPidNamespaces())
}

// pidLevels are the pids clone3 gives process pid (set_tid), innermost pid
// namespace first, and whether the last is its pid in crsub's: a process
// in a pid namespace the image records gets the pid it had there and the
// one it had in crsub's (or in the tree's new namespace, with
// Options.PidNamespace).
func (s *restorer) pidLevels(pid int) (tids []int, inCrsubs bool) {
	tp := s.treeProcess(pid)
	if tp == nil && s.recordsPidNamespaces() && !s.opts.PidNamespace {
		if inner := s.groupNsPid(pid); inner != 0 {
			// A stand-in for a group's leader gone, in the members'
			// namespace.
			return []int{inner, pid}, true
		}
	}
	if tp != nil && tp.NsPid != 0 && s.recordsPidNamespaces() {
		switch {
		case s.opts.PidNamespace && s.tree.Processes[0].NsPid == 1:
			// The root's namespace is the new one.
			return []int{tp.NsPid}, false
		case s.opts.PidNamespace:
			return []int{tp.NsPid, tp.Pid}, false
		}
		return []int{tp.NsPid, tp.Pid}, true
	}
	return []int{s.innerPid(pid)}, !s.opts.PidNamespace
}

// hostPid is what image pid is as crsub sees it, once its task exists.
func (s *restorer) hostPid(pid int) int {
	for _, t := range s.tasks {
		if t.pid == pid {
			return t.host
		}
	}
	return pid
}

// innerTid is innerPid for a thread of process pid.
func (s *restorer) innerTid(pid, tid int) int {
	if tid == pid {
		return s.innerPid(pid)
	}
	if tp := s.treeProcess(pid); s.inPidNamespace(pid) && tp != nil && tp.NsPid != 0 {
		for i, t := range tp.Tids {
			if t == tid && i < len(tp.NsTids) {
				return tp.NsTids[i]
			}
		}
	}
	return tid
}

func (s *restorer) killAll() {
	// Every task is sent SIGKILL before any is waited for, children
	// first: the init of a pid namespace does not end before the tasks
	// in it are reaped, by crsub, which traces them.
	for _, t := range s.tasks {
		if !t.released {
			_ = unix.Kill(t.host, unix.SIGKILL)
		}
	}
	for i := len(s.tasks) - 1; i >= 0; i-- {
		s.tasks[i].kill()
	}
	for _, l := range s.groupLeaders {
		l.kill()
	}
	for _, h := range s.sessionHelpers {
		h.helper.kill()
	}
	for _, m := range s.sessionMakers {
		m.kill()
	}
	for _, h := range s.holds {
		h.Close()
	}
	for _, p := range s.children {
		_ = p.Kill()
		_, _ = p.Wait()
	}
	for _, o := range s.substitutes {
		o.Undo()
	}
}

func (s *restorer) task(pid int) (*task, error) {
	for _, t := range s.tasks {
		if t.pid == pid {
			return t, nil
		}
	}
	return nil, fmt.Errorf("pid %d is not in the image's task tree", pid)
}

// apply restores one record into its task.
func (s *restorer) apply(rec *ckpt.Record) error {
	if rec.Type != ckpt.TypeVMA && rec.Type != ckpt.TypePages {
		// The memory of the process being rebuilt is complete: the file
		// its mappings kept open goes before any fd is placed.
		for _, t := range s.tasks {
			if err := t.closeMappedFile(); err != nil {
				return err
			}
			if err := t.settleInherited(); err != nil {
				return err
			}
		}
	}
	switch rec.Type {
	case ckpt.TypeProcess:
		var p ckpt.Process
		if err := rec.Decode(&p); err != nil {
			return err
		}
		t, err := s.startProcess(&p)
		if err != nil {
			return err
		}
		s.current = t
		// Into its cgroups as soon as it exists: what it allocates from
		// here on (memory, pids) is counted there. Its children inherit
		// them, and its threads (finish).
		if err := s.moveToCgroups(t.host, t.host, p.Cgroups, false); err != nil {
			return err
		}
	case ckpt.TypeCgroups:
		if s.current != nil {
			return errors.New("cgroups record after a process record")
		}
		return s.makeCgroups(rec)
	case ckpt.TypeThread:
		var th ckpt.Thread
		if err := rec.Decode(&th); err != nil {
			return err
		}
		t, err := s.task(th.Pid)
		if err != nil {
			return err
		}
		if err := t.addThread(&th); err != nil {
			return err
		}
	case ckpt.TypeSignals:
		var sig ckpt.Signals
		if err := rec.Decode(&sig); err != nil {
			return err
		}
		t, err := s.task(sig.Pid)
		if err != nil {
			return err
		}
		t.signals = &sig
	case ckpt.TypeMM:
		var mm ckpt.MM
		if err := rec.Decode(&mm); err != nil {
			return err
		}
		t, err := s.task(mm.Pid)
		if err != nil {
			return err
		}
		return t.prepareMemory(&mm)
	case ckpt.TypeVMA:
		var v ckpt.VMA
		if err := rec.Decode(&v); err != nil {
			return err
		}
		t, err := s.task(v.Pid)
		if err != nil {
			return err
		}
		return t.mapVMA(&v)
	case ckpt.TypePages:
		var pg ckpt.Pages
		if err := rec.Decode(&pg); err != nil {
			return err
		}
		t, err := s.task(pg.Pid)
		if err != nil {
			return err
		}
		return t.fillPages(&pg, rec)
	case ckpt.TypeFile:
		return s.restoreFile(rec)
	case ckpt.TypeNamespace:
		return s.addNamespace(rec)
	case ckpt.TypeFd:
		var fd ckpt.Fd
		if err := rec.Decode(&fd); err != nil {
			return err
		}
		t, err := s.task(fd.Pid)
		if err != nil {
			return err
		}
		return t.placeFd(&fd)
	default:
		if restore, ok := ns.ForObject(rec.Type); ok {
			return s.restoreNamespaceObject(rec, restore)
		}
		if restore, ok := files.ForObject(rec.Type); ok {
			// The objects kinds restore on their own (a pipe, a pty…)
			// are made in the process whose records are being read;
			// others that hold them get copies.
			if s.current == nil {
				return fmt.Errorf("%s record before any process record", rec.Type)
			}
			return restore(s.files, s.current, rec)
		}
		if !rec.Type.Known() {
			s.log.Debug("skipping a record of a newer format", "record", rec.Index, "type", rec.Type)
			return nil
		}
		return fmt.Errorf("unexpected %s record", rec.Type)
	}
	return nil
}

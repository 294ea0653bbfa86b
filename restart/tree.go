package restart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// A process tree is rebuilt parents first. The root is created by crsub;
// every other process is forked, with its own pid, by its parent once the
// parent's address space and files are in place (its records come after
// the parent's in the image). A child starts as a copy of its parent and is
// then rebuilt like any task, so it is the parent's child, in the parent's
// session, exactly as the kernel made it the first time.

// checkTree validates the plan: parents before children, pids unique.
func checkTree(tree *ckpt.Tree) error {
	seen := map[int]bool{}
	for i, p := range tree.Processes {
		if seen[p.Pid] {
			return fmt.Errorf("pid %d appears twice in the task tree", p.Pid)
		}
		seen[p.Pid] = true
		if i == 0 {
			if p.Zombie {
				return fmt.Errorf("the root, pid %d, is a zombie", p.Pid)
			}
			if p.SharesFdTable {
				return fmt.Errorf("the root, pid %d, shares the fd table of a parent outside the image", p.Pid)
			}
			continue
		}
		if !seen[p.Ppid] {
			return fmt.Errorf("pid %d comes before its parent %d in the task tree", p.Pid, p.Ppid)
		}
		if p.SharesFdTable && p.Zombie {
			return fmt.Errorf("pid %d is a zombie sharing an fd table", p.Pid)
		}
		if !p.Zombie && (len(p.Tids) == 0 || p.Tids[0] != p.Pid) {
			return fmt.Errorf("pid %d: the tree does not list its main thread first", p.Pid)
		}
	}
	return nil
}

func (s *restorer) treeProcess(pid int) *ckpt.TreeProcess {
	for i := range s.tree.Processes {
		if s.tree.Processes[i].Pid == pid {
			return &s.tree.Processes[i]
		}
	}
	return nil
}

// startProcess makes the task for a process record current, forking it
// from its parent, in its namespaces, unless it is the root, created
// before (createRoot).
func (s *restorer) startProcess(p *ckpt.Process) (*task, error) {
	pid := p.Pid
	if t, err := s.task(pid); err == nil {
		t.process = p
		return t, nil
	}
	tp := s.treeProcess(pid)
	if tp == nil || tp.Zombie {
		return nil, fmt.Errorf("pid %d is not a live process of the task tree", pid)
	}
	parent, err := s.task(tp.Ppid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: its parent %d has not been restored before it", pid, tp.Ppid)
	}
	forker, err := s.sessionForker(p, tp)
	if err != nil {
		return nil, &TaskError{Pid: pid, Phase: "making its session", Err: err}
	}
	var t *task
	var flags uint64
	if forker != nil && !tp.SharesFdTable {
		flags = s.cloneFlags(p, forker)
		if t, err = s.forkInSession(forker, p, pid, flags); err != nil {
			return nil, err
		}
	} else {
		if parent.setsidLater && tp.Sid == parent.pid {
			if err := parent.leadSession(); err != nil {
				return nil, &TaskError{Pid: parent.pid, Phase: "making its session", Err: err}
			}
		}
		back, err := s.beforeFork(parent, p)
		if err != nil {
			return nil, errors.Join(err, back())
		}
		flags = s.cloneFlags(p, parent)
		if tp.SharesFdTable {
			flags |= unix.CLONE_FILES
		}
		t, err = parent.fork(pid, unix.SIGCHLD, flags)
		if err := errors.Join(err, back()); err != nil {
			if t != nil {
				t.kill()
			}
			return nil, err
		}
	}
	t.sharesFdTable = tp.SharesFdTable
	s.tasks = append(s.tasks, t)
	t.process = p
	if err := s.enterNamespaces(t, p, flags); err != nil {
		return nil, &TaskError{Pid: t.pid, Phase: "entering its namespaces", Err: err}
	}
	return t, nil
}

// childSpin is where a forked child waits to be seized: it first asks to
// be killed when its parent dies, since until crsub seizes it (with
// PTRACE_O_EXITKILL, as its parent is) nothing else would end it if crsub
// died, and it would spin on, holding the image's pid. A parent that died
// before the child asked (killed with a restart that failed as the child
// was being made) is not there to signal it: the child then finds it has
// another parent than ppid, and exits. It relies on rax being 0, clone3's
// return in the child. The child returns from clone3 at spinOffset, where
// a jump takes it to the code at childSpinAt, in the page's scratch memory
// (the code page is the child's own copy: what the parent writes there
// later does not reach it).
func childSpin(ppid int) []byte {
	code := []byte{
		0x8d, 0x78, 0x01, //             lea edi, [rax+1]  PR_SET_PDEATHSIG
		0x8d, 0x70, 0x09, //             lea esi, [rax+9]  SIGKILL
		0xb0, 0x9d, //                   mov al, 157       prctl
		0x0f, 0x05, //                   syscall
		0xb8, 0x6e, 0x00, 0x00, 0x00, // mov eax, 110      getppid
		0x0f, 0x05, //                   syscall
		0x3d, 0, 0, 0, 0, //             cmp eax, ppid
		0x75, 0x02, //                   jne exit
		0xeb, 0xfe, //                   jmp .
		0xb8, 0x3c, 0x00, 0x00, 0x00, // exit: mov eax, 60  exit
		0x31, 0xff, //                   xor edi, edi
		0x0f, 0x05, //                   syscall
	}
	binary.LittleEndian.PutUint32(code[18:], uint32(ppid))
	return code
}

// childSpinAt is where childSpin is, in the code page; toChildSpin, at
// spinOffset, jumps there.
const childSpinAt = 64

var toChildSpin = []byte{0xeb, childSpinAt - spinOffset - 2} // jmp childSpinAt

// fork creates a child of this task with exactly pid (in each pid
// namespace the restart chooses it in, pidLevels): clone3 with set_tid
// and flags (CLONE_FILES, the CLONE_NEW* flags of the namespaces to make
// for it, or none) run inside the task. The child returns from clone3 into
// the code page, where it spins until seized (childSpin).
// Its exit signals the parent with exitSignal (0: none, and the parent
// reaps it with __WALL).
func (t *task) fork(pid int, exitSignal unix.Signal, flags uint64) (*task, error) {
	if t.remote == nil {
		return nil, fmt.Errorf("pid %d: its parent %d has no address space yet", pid, t.pid)
	}
	tids, inCrsubs := t.s.pidLevels(pid)
	if t.inUserNamespace() && inCrsubs {
		// set_tid needs CAP_CHECKPOINT_RESTORE in the user namespace
		// owning each pid namespace it sets a pid in, which a task in a
		// user namespace below crsub's has only in its own: the child
		// gets the pids it had in the image's pid namespace, any pid in
		// crsub's.
		if len(tids) < 2 {
			return nil, fmt.Errorf("pid %d: its parent %d is in a user namespace of the image, but not in a pid namespace of it: its pid cannot be given back", pid, t.pid)
		}
		tids, inCrsubs = tids[:len(tids)-1], false
	}
	// The init of a new pid namespace sees no parent: getppid gives it 0.
	ppid := t.inner()
	if tids[0] == 1 {
		ppid = 0
	}
	inner := tids[0]
	var got uint64
	err := t.s.whenPidFree(pid, func() error {
		var err error
		got, err = t.clone3(tids, ppid, exitSignal, flags)
		if errors.Is(err, unix.EEXIST) {
			return errPidInUse
		}
		if err != nil {
			return fmt.Errorf("pid %d: clone3 in its parent %d: %w", pid, t.pid, err)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	// The parent sees the child's pid in its own pid namespace: the
	// child's, or the one above it if the child is the init of a new one.
	if int(got) != inner && (len(tids) < 2 || int(got) != tids[1]) {
		return nil, fmt.Errorf("pid %d: clone3 gave pid %d, want %v", pid, got, tids)
	}
	host := tids[len(tids)-1]
	if !inCrsubs {
		if host, err = procfs.ChildWithNsPid(t.host, inner); err != nil {
			return nil, fmt.Errorf("pid %d: %w", pid, err)
		}
	}
	c := newTask(pid, host, t.s)
	c.parent = t
	// The child inherited the parent's fd table: its pidfd of crsub is
	// wherever the parent's is now (moved if an image fd needed the number).
	c.callerPidfd = t.callerPidfd
	if subs := t.s.opts.ProcessSubstitutes[pid]; subs != nil {
		c.substitutes = subs
	}
	if c.tracee, err = ptrace.Seize(host, ptrace.SuspendSeccomp, ptrace.ExitKill); err != nil {
		c.kill()
		return nil, fmt.Errorf("pid %d: taking over the new task: %w", pid, err)
	}
	if c.pidfd, err = sys.PidfdOpen(host); err != nil {
		c.kill()
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return c, nil
}

// clone3 runs clone3 in the task, the child getting pids tids (set_tid,
// innermost first; none: any free pid) and spinning in childSpin(ppid)
// until seized. It returns the child's pid as the task sees it.
func (t *task) clone3(tids []int, ppid int, exitSignal unix.Signal, flags uint64) (uint64, error) {
	if err := t.remote.WriteMem(t.codePage+childSpinAt, childSpin(ppid)); err != nil {
		return 0, err
	}
	if err := t.remote.WriteMem(t.codePage+spinOffset, toChildSpin); err != nil {
		return 0, err
	}
	args := make([]byte, cloneArgsSize+4*len(tids))
	le := binary.LittleEndian
	le.PutUint64(args[0:], flags)               // flags
	le.PutUint64(args[32:], uint64(exitSignal)) // exit_signal
	if len(tids) > 0 {
		le.PutUint64(args[64:], t.scratch+cloneArgsSize) // set_tid
		le.PutUint64(args[72:], uint64(len(tids)))       // set_tid_size
	}
	for i, tid := range tids {
		le.PutUint32(args[cloneArgsSize+4*i:], uint32(tid))
	}
	if err := t.remote.WriteMem(t.scratch, args); err != nil {
		return 0, err
	}
	return t.Syscall(unix.SYS_CLONE3, t.scratch, cloneArgsSize)
}

// joinSession makes the task a session or process-group leader if it was
// one, right after its address space is prepared and before it forks any
// child, so its children inherit the session and group.
func (t *task) joinSession() error {
	tp := t.s.treeProcess(t.pid)
	if tp == nil {
		return nil
	}
	if tp.Sid == t.pid {
		if t.s.setsidAfterFork[t.pid] {
			// It forks first the children born before its setsid, in the
			// session it was in (leadSession).
			t.setsidLater = true
			return nil
		}
		return t.leadSession()
	}
	if tp.Pgid == t.pid {
		if _, err := t.Syscall(unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("setpgid: %w", err)
		}
	}
	return nil
}

// leadSession makes the task the leader of a session of its own.
func (t *task) leadSession() error {
	t.setsidLater = false
	if _, err := t.Syscall(unix.SYS_SETSID); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	return nil
}

// joinGroup puts the task in its process group once every task exists (the
// group's leader may be a sibling created after it).
func (t *task) joinGroup() error {
	tp := t.s.treeProcess(t.pid)
	if tp == nil || tp.Pgid == t.pid || tp.Sid == t.pid {
		return nil
	}
	cur, err := t.Syscall(unix.SYS_GETPGID, 0)
	if err != nil {
		return err
	}
	pgid := t.s.innerPid(tp.Pgid)
	if int(cur) == pgid {
		return nil
	}
	if t.s.groupLeaders[tp.Pgid] == nil && t.s.inPidNamespace(t.pid) != t.s.inPidNamespace(tp.Pgid) {
		// Its group's leader is outside its pid namespace: it keeps the
		// group it inherited, as it did.
		return nil
	}
	if t.s.treeProcess(tp.Pgid) == nil && t.s.groupLeaders[tp.Pgid] == nil {
		// The group's leader is outside the tree: the restored process
		// stays in the group it inherited.
		t.s.log.Warn("process group leader is not in the image; keeping the inherited group", "pid", t.pid, "pgid", tp.Pgid)
		return nil
	}
	if _, err := t.Syscall(unix.SYS_SETPGID, 0, uint64(pgid)); err != nil {
		return fmt.Errorf("setpgid %d: %w", pgid, err)
	}
	return nil
}

// restoreCtty makes a session leader's pty its controlling terminal again,
// with the foreground process group it had. A leader that held no fd on
// it opens the new slave for the moment it takes. What cannot be done
// (the fd was given a substitute that is no terminal) is a warning: the
// programs run, without job control.
func (t *task) restoreCtty() {
	if t.process == nil || t.process.Ctty == nil {
		return
	}
	c := t.process.Ctty
	if _, substituted := t.substitutes[c.Fd]; c.External && (substituted || t.s.files.NewTerminal == nil) {
		return // someone else's terminal, not made again
	}
	fd := c.Fd
	if fd < 0 {
		path, ok := t.s.files.PtyPaths[c.Pty]
		if !ok {
			t.s.log.Warn("controlling terminal not restored: its pty was not", "pid", t.pid, "pty", c.Pty)
			return
		}
		var err error
		if fd, err = t.Open(path, unix.O_RDWR|unix.O_NOCTTY, 0); err != nil {
			t.s.log.Warn("controlling terminal not restored", "pid", t.pid, "path", path, "err", err)
			return
		}
		defer func() { _, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd)) }()
	}
	if _, err := t.Syscall(unix.SYS_IOCTL, uint64(fd), unix.TIOCSCTTY, 0); err != nil {
		t.s.log.Warn("controlling terminal not restored", "pid", t.pid, "fd", c.Fd, "err", err)
		return
	}
	member := false
	for _, tp := range t.s.tree.Processes {
		member = member || (tp.Pgid == c.Pgrp && !tp.Zombie)
	}
	if c.Pgrp <= 0 || !member {
		return
	}
	if err := files.IoctlSetInt(t, fd, unix.TIOCSPGRP, t.s.innerPid(c.Pgrp)); err != nil {
		t.s.log.Warn("terminal's foreground process group not restored", "pid", t.pid, "pgrp", c.Pgrp, "err", err)
	}
}

// createZombies makes each zombie of the image again: forked by its parent,
// it exits with its recorded status and stays unreaped for its parent.
func (s *restorer) createZombies() error {
	for _, tp := range s.tree.Processes {
		if !tp.Zombie {
			continue
		}
		z := s.sessionMakers[tp.Pid]
		delete(s.sessionMakers, tp.Pid)
		if z == nil {
			parent, err := s.task(tp.Ppid)
			if err != nil {
				return fmt.Errorf("zombie %d: %w", tp.Pid, err)
			}
			if z, err = parent.fork(tp.Pid, unix.SIGCHLD, 0); err != nil {
				return fmt.Errorf("zombie %d: %w", tp.Pid, err)
			}
		}
		s.tasks = append(s.tasks, z)
		if err := z.die(&tp); err != nil {
			return fmt.Errorf("zombie %d: %w", tp.Pid, err)
		}
	}
	return nil
}

// die ends the task as zombie tp: in its session and process group, with
// its name, and its wait status: exit_group for a normal exit, or its
// signal, with default action and no core dump, for a killed one. As its
// tracer crsub sees the death first; the zombie then waits for its real
// parent.
func (t *task) die(tp *ckpt.TreeProcess) error {
	comm, status := tp.Comm, tp.ExitCode
	// A zombie that made its session early (session.go) is in it, and
	// ready to run system calls, already.
	early := t.remote != nil
	if !early {
		r, err := remote.New(t.tracee)
		if err != nil {
			return err
		}
		t.remote = r
	}
	r := t.remote
	if _, err := r.MapPage(0); err != nil {
		return err
	}
	if !early {
		if err := t.joinZombieGroup(tp); err != nil {
			return err
		}
	}
	var err error
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if err := r.WriteMem(r.ScratchAddr(), append([]byte(comm), 0)); err != nil {
		return err
	}
	if _, err := r.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, r.ScratchAddr()); err != nil {
		return fmt.Errorf("zombie's name: %w", err)
	}
	if sig := status & 0x7f; sig != 0 {
		zero := unix.Rlimit{}
		_ = unix.Prlimit(t.host, unix.RLIMIT_CORE, &zero, nil)
		if err := r.WriteMem(r.ScratchAddr(), make([]byte, 32)); err != nil {
			return err
		}
		// SIGKILL and SIGSTOP always have their default action, and
		// sigaction refuses to be asked.
		if sig != int(unix.SIGKILL) && sig != int(unix.SIGSTOP) {
			if _, err := r.Syscall(unix.SYS_RT_SIGACTION, uint64(sig), r.ScratchAddr(), 0, 8); err != nil {
				return fmt.Errorf("resetting signal %d: %w", sig, err)
			}
		}
		_, err = r.Syscall(unix.SYS_KILL, uint64(t.inner()), uint64(sig))
		if err == nil {
			// The signal is blocked during injection; unblocking happens
			// with the mask reset at detach.
			err = r.Finish(mustRegs(t.tracee))
			if err == nil {
				_ = t.tracee.SetSigMask(0)
				err = t.tracee.Detach()
			}
		}
	} else {
		_, err = r.Syscall(unix.SYS_EXIT_GROUP, uint64(status>>8&0xff))
	}
	if err != nil && !errors.Is(err, ptrace.ErrExited) {
		return fmt.Errorf("exiting with status %#x: %w", status, err)
	}
	t.released = true
	t.closeHandles()
	return nil
}

// joinZombieGroup puts zombie tp, before it dies, in the session it led
// or the process group it was in: one it led, one a live process of the
// tree leads, or one whose leader is gone (makeGoneLeaders).
func (t *task) joinZombieGroup(tp *ckpt.TreeProcess) error {
	switch {
	case tp.Sid == tp.Pid:
		if _, err := t.Syscall(unix.SYS_SETSID); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
	case tp.Pgid == tp.Pid:
		if _, err := t.Syscall(unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("setpgid: %w", err)
		}
	default:
		leader := t.s.treeProcess(tp.Pgid)
		if (leader == nil || leader.Zombie) && t.s.groupLeaders[tp.Pgid] == nil {
			return nil // stays in the group it inherited, as a live process would
		}
		pgid := t.s.innerPid(tp.Pgid)
		cur, err := t.Syscall(unix.SYS_GETPGID, 0)
		if err != nil {
			return err
		}
		if int(cur) == pgid {
			return nil
		}
		if _, err := t.Syscall(unix.SYS_SETPGID, 0, uint64(pgid)); err != nil {
			return fmt.Errorf("setpgid %d: %w", pgid, err)
		}
	}
	return nil
}

// goneLeaders lists, by pgid, the process groups of the tree whose leader
// was gone at checkpoint (it exited and was reaped) and the session they
// are in. A group that is its session's own (pgid = sid) is not among
// them: only its leader could make it.
func goneLeaders(tree *ckpt.Tree) map[int]int {
	in := map[int]bool{}
	for _, tp := range tree.Processes {
		in[tp.Pid] = true
	}
	gone := map[int]int{}
	for _, tp := range tree.Processes {
		if tp.PgidLeaderGone && tp.Pgid > 0 && !in[tp.Pgid] && tp.Pgid != tp.Sid {
			gone[tp.Pgid] = tp.Sid
		}
	}
	return gone
}

// makeGoneLeaders makes each process group whose leader is gone exist
// again while its members join it: a stand-in with the leader's pid,
// forked by a live process of the group's session (the group must be in
// the session of those joining it), makes a group of its own. Zombies join
// it before they die, live members in joinGroup; the stand-ins then exit
// (endGoneLeaders), and the group lives on in its members, as it did.
func (s *restorer) makeGoneLeaders() error {
	gone := goneLeaders(&s.tree)
	pgids := make([]int, 0, len(gone))
	for pgid := range gone {
		pgids = append(pgids, pgid)
	}
	slices.Sort(pgids)
	for _, pgid := range pgids {
		var parent *task
		for _, t := range s.live() {
			if tp := s.treeProcess(t.pid); tp != nil && tp.Sid == gone[pgid] {
				parent = t
				break
			}
		}
		if parent == nil {
			s.log.Warn("process group's leader is not in the image, nor any live process of its session; its members keep the group they inherit", "pgid", pgid)
			continue
		}
		// Only a group in crsub's pid namespace can have members outside
		// the image; its id there is the last of the stand-in's pids.
		if levels, inCrsubs := s.pidLevels(pgid); inCrsubs && unix.Kill(-levels[len(levels)-1], 0) == nil {
			// The group lives on in processes outside the image (a shell's
			// job whose leader exited): its pid is still the group's, so
			// no stand-in can have it, and none is needed. The members
			// keep the group they inherit (joinGroup).
			s.log.Info("process group's leader is gone, the group lives on outside the image", "pgid", pgid)
			continue
		}
		// No exit signal: the parent, a restored process, must not see
		// a SIGCHLD for a child it never had.
		l, err := parent.fork(pgid, 0, 0)
		if err != nil {
			return fmt.Errorf("process group %d, whose leader is gone: %w", pgid, err)
		}
		s.groupLeaders[pgid] = l
		if l.remote, err = remote.New(l.tracee); err != nil {
			return fmt.Errorf("process group %d: %w", pgid, err)
		}
		if _, err := l.Syscall(unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("process group %d: setpgid: %w", pgid, err)
		}
	}
	return nil
}

// endGoneLeaders ends the stand-ins of makeGoneLeaders once every member
// has joined its group: each exits and its parent reaps it.
func (s *restorer) endGoneLeaders() error {
	for pgid, l := range s.groupLeaders {
		if l.released {
			continue
		}
		if _, err := l.Syscall(unix.SYS_EXIT_GROUP, 0); !errors.Is(err, ptrace.ErrExited) {
			return fmt.Errorf("process group %d: the stand-in for its leader did not exit: %v", pgid, err)
		}
		l.released = true
		l.closeHandles()
		inner := s.innerPid(pgid)
		got, err := l.parent.Syscall(unix.SYS_WAIT4, uint64(inner), 0, unix.WALL|unix.WNOHANG, 0)
		if err != nil {
			return fmt.Errorf("process group %d: reaping the stand-in for its leader: %w", pgid, err)
		}
		if int(got) != inner {
			return fmt.Errorf("process group %d: the stand-in for its leader is not ready to be reaped", pgid)
		}
	}
	return nil
}

func mustRegs(t *ptrace.Tracee) ptrace.Regs {
	r, _ := t.Regs()
	return r
}

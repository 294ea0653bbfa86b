package restart

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// A process can be in a session none of its ancestors is in: its parent
// exited and the kernel gave it to the init of its pid namespace, while
// the session's leader lives on elsewhere in the tree, is a zombie, or is
// gone. A fork makes a child in its parent's session, and setsid only
// makes a new one, so such a process is forked, as CRIU does, by a helper
// that a process of its session forks (the session's leader, or any of
// its members): once every process exists the helper exits, and the kernel
// gives the child to the init, as it did the first time. No subreaper is
// on the way then: PR_SET_CHILD_SUBREAPER is set again later (finish).
// A session no live process of the image is in yet gets one first: its
// leader forked early if it is a zombie (it dies with the other zombies),
// or a stand-in with the leader's pid that makes the session and exits
// with the helpers if the leader is gone.

// sessionHelper is a helper forked by a process of a session, and the
// processes it forked in that session.
type sessionHelper struct {
	helper   *task
	children []*task
}

// sessionForker is the task of the session of process p that must fork
// it, through a helper, when its parent's fork would put it in another;
// nil when its parent's fork does (or the image's tree is not one this
// can remake: the process then stays in its parent's session).
func (s *restorer) sessionForker(p *ckpt.Process, tp *ckpt.TreeProcess) (*task, error) {
	ptp := s.treeProcess(tp.Ppid)
	if tp.Sid == tp.Pid || tp.Sid <= 0 || ptp == nil || ptp.Sid == tp.Sid {
		return nil, nil
	}
	// Only the init of a pid namespace is given orphans whatever their
	// session; a child born in another session than its parent's (forked
	// before the parent's setsid) is not remade this way.
	if !s.inPidNamespace(tp.Pid) || s.innerPid(tp.Ppid) != 1 {
		return nil, nil
	}
	pidns := p.Namespaces[ckpt.NamespacePid]
	inSession := func(t *task) bool {
		if t.process == nil || t.codePage == 0 || t.process.Namespaces[ckpt.NamespacePid] != pidns {
			return false
		}
		x := s.treeProcess(t.pid)
		return x != nil && !x.Zombie && x.Sid == tp.Sid
	}
	if l, err := s.task(tp.Sid); err == nil && inSession(l) {
		return l, nil
	}
	for _, t := range s.live() {
		if inSession(t) {
			return t, nil
		}
	}
	if m := s.sessionMakers[tp.Sid]; m != nil {
		return m, nil
	}
	return s.makeSession(tp.Sid, ptp.Pid, pidns)
}

// makeSession makes session sid exist before any live process of the
// image is in it: its leader, a zombie of the image, forked by its parent
// now rather than with the other zombies; or, if the leader is gone, a
// stand-in with its pid forked by init, the init of the pid namespace.
func (s *restorer) makeSession(sid, init int, pidns ckpt.Objref) (*task, error) {
	ltp := s.treeProcess(sid)
	var parent *task
	var err error
	switch {
	case ltp != nil && ltp.Zombie:
		parent, err = s.task(ltp.Ppid)
		if err != nil {
			return nil, nil // its parent comes later: left as it was
		}
	case ltp == nil:
		if s.recordsPidNamespaces() && s.groupNsPid(sid) == 0 {
			return nil, nil // its pid in the namespace is not known
		}
		if parent, err = s.task(init); err != nil {
			return nil, err
		}
	default:
		return nil, nil // a live leader not made yet
	}
	if parent.process == nil || parent.process.Namespaces[ckpt.NamespacePid] != pidns {
		return nil, nil
	}
	exitSignal := unix.SIGCHLD
	if ltp == nil {
		// Its parent, a restored process, must not see a SIGCHLD for a
		// child it never had.
		exitSignal = 0
	}
	m, err := parent.fork(sid, exitSignal, 0)
	if err != nil {
		return nil, fmt.Errorf("session %d: %w", sid, err)
	}
	s.sessionMakers[sid] = m
	if err := m.copyOf(parent); err != nil {
		return nil, fmt.Errorf("session %d: %w", sid, err)
	}
	if ltp != nil {
		err = m.joinZombieGroup(ltp)
	} else {
		_, err = m.Syscall(unix.SYS_SETSID)
	}
	if err != nil {
		return nil, fmt.Errorf("session %d: %w", sid, err)
	}
	return m, nil
}

// copyOf readies task t, just forked by parent and still a copy of it
// (but for a session or group), to run system calls and fork: in parent's
// code page, scratch buffer, namespaces and memory.
func (t *task) copyOf(parent *task) error {
	r, err := remote.New(t.tracee)
	if err != nil {
		return err
	}
	t.remote = r
	// The code page starts with a syscall instruction (remote.MapPage),
	// after which the spin of a forked child is (spinOffset).
	r.UseSyscallAt(parent.codePage)
	t.codePage, t.scratch, t.scratchSize = parent.codePage, parent.scratch, parent.scratchSize
	t.process, t.vmas = parent.process, parent.vmas
	return nil
}

// forkInSession forks process p, pid, through a new helper of forker's.
func (s *restorer) forkInSession(forker *task, p *ckpt.Process, pid int, flags uint64) (*task, error) {
	ppid := forker.inner()
	got, err := forker.clone3(nil, ppid, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("pid %d: forking a helper in %d: %w", pid, forker.pid, err)
	}
	host, err := procfs.ChildWithNsPid(forker.host, int(got))
	if err != nil {
		return nil, fmt.Errorf("pid %d: its helper: %w", pid, err)
	}
	h := newTask(forker.pid, host, s)
	h.helperPid = int(got)
	h.parent = forker
	h.callerPidfd = forker.callerPidfd
	sh := &sessionHelper{helper: h}
	s.sessionHelpers = append(s.sessionHelpers, sh)
	if h.tracee, err = ptrace.Seize(host, ptrace.SuspendSeccomp, ptrace.ExitKill); err != nil {
		_ = unix.Kill(host, unix.SIGKILL)
		return nil, fmt.Errorf("pid %d: taking over its helper: %w", pid, err)
	}
	if h.pidfd, err = sys.PidfdOpen(host); err != nil {
		return nil, fmt.Errorf("pid %d: its helper: %w", pid, err)
	}
	if err := h.copyOf(forker); err != nil {
		return nil, fmt.Errorf("pid %d: its helper: %w", pid, err)
	}
	back, err := s.beforeFork(h, p)
	if err != nil {
		return nil, errors.Join(err, back())
	}
	t, err := h.fork(pid, unix.SIGCHLD, flags)
	if err := errors.Join(err, back()); err != nil {
		if t != nil {
			t.kill()
		}
		return nil, err
	}
	sh.children = append(sh.children, t)
	return t, nil
}

// endSessionHelpers ends the helpers, once their children exist, and the
// stand-ins for gone session leaders; their parents reap them. Their
// children, no longer to be killed with them, go to the init.
func (s *restorer) endSessionHelpers() error {
	// The session leaders that forked children before their setsid, and
	// none after, make their sessions now.
	for _, t := range s.live() {
		if t.setsidLater {
			if err := t.leadSession(); err != nil {
				return &TaskError{Pid: t.pid, Phase: "making its session", Err: err}
			}
		}
	}
	for _, sh := range s.sessionHelpers {
		for _, c := range sh.children {
			if _, err := c.Syscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, 0); err != nil {
				return fmt.Errorf("pid %d: leaving its helper: %w", c.pid, err)
			}
		}
		if err := sh.helper.exitReaped(); err != nil {
			return fmt.Errorf("pid %d: its helper: %w", sh.helper.pid, err)
		}
	}
	for sid, m := range s.sessionMakers {
		if tp := s.treeProcess(sid); tp != nil {
			continue // a zombie, dying with the others
		}
		if err := m.exitReaped(); err != nil {
			return fmt.Errorf("session %d: the stand-in for its leader: %w", sid, err)
		}
	}
	return nil
}

// exitReaped ends helper t, which its parent then reaps.
func (t *task) exitReaped() error {
	if t.released {
		return nil
	}
	if _, err := t.Syscall(unix.SYS_EXIT_GROUP, 0); !errors.Is(err, ptrace.ErrExited) {
		return fmt.Errorf("did not exit: %v", err)
	}
	t.released = true
	t.closeHandles()
	inner := t.inner()
	got, err := t.parent.Syscall(unix.SYS_WAIT4, uint64(inner), 0, unix.WALL|unix.WNOHANG, 0)
	if err != nil {
		return fmt.Errorf("reaping it: %w", err)
	}
	if int(got) != inner {
		return errors.New("not ready to be reaped")
	}
	return nil
}

// warnOtherSessions says which processes are in another session than the
// image gives them: a tree whose session no process can make again from
// where the process is (its leader gone, the process not its parent's
// orphan) leaves them in their parent's. Only a process whose session is
// not its parent's, nor its own, can be left so, and the children of one
// that was: the others are not asked (a call injected each). The session
// the root was in outside the tree is not the image's to keep.
func (s *restorer) warnOtherSessions() {
	elsewhere := map[int]bool{}
	for _, t := range s.live() {
		tp := s.treeProcess(t.pid)
		if tp == nil || tp.Sid <= 0 || tp.Sid == tp.Pid {
			continue
		}
		ptp := s.treeProcess(tp.Ppid)
		if ptp == nil || ptp.Sid == tp.Sid && !elsewhere[ptp.Pid] {
			continue
		}
		got, err := t.Syscall(unix.SYS_GETSID, 0)
		if err != nil || int(got) == s.innerPid(tp.Sid) {
			continue
		}
		elsewhere[tp.Pid] = true
		s.log.Warn("process restarted in another session than it had: the tree gives no process that can make its session again from where it is", "pid", t.pid, "sid", tp.Sid, "now", int(got))
	}
}

package restart

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/internal/remote"
)

// The image's namespaces are recorded before its first process; each is
// made again with the first task of the tree in it: by a clone flag when
// that task is created, or by unshare in it once it exists (a cgroup
// namespace, whose root must be in place first), or, for the kinds a
// process chooses for its children (pid, time), by unshare in its parent
// before the fork, the parent going back to its own afterwards if it did
// not have that one for its children. The root is made by crsub, which
// cannot unshare for it: its pid namespace comes with the clone, its time
// namespace by unshare and setns in it. A task in a namespace made before
// for another one joins it (setns); one supplied by the caller is joined
// the same way, and nothing of the image's is restored into it. What a
// namespace holds is restored once it is made, from crsub, by a thread
// that joins it (ns.Restored.Do). A failed restart leaves nothing: the
// namespaces die with their tasks, and crsub's fds on them are closed.
//
// A user namespace comes first (ns.Kinds): made by the clone of its first
// task, with whatever else that clone makes, its maps written by crsub
// before the task runs, the task then its root (becomeRootIn); what the
// task makes from then on, by unshare or for its children, is owned by it,
// as the image says (checked: madeIn). A task in it has no rights over
// crsub: it takes crsub's fds handed over (passfd.go), and forks with the
// pids of the image's pid namespaces only (fork).

// namespaces is the restart's view of the image's namespaces.
type namespaces struct {
	// records holds the image's namespace records, by objref.
	records map[ckpt.Objref]*ckpt.Namespace
	// made holds the namespaces made again or supplied, by objref.
	made map[ckpt.Objref]*ns.Restored
	// supplied holds the caller's namespaces (Options.Namespaces), by
	// kind, until a task joins them.
	supplied map[string]*os.File
	ctx      *ns.RestoreContext
}

// addNamespace reads a namespace record; it is made with its first task.
func (s *restorer) addNamespace(rec *ckpt.Record) error {
	var n ckpt.Namespace
	if err := rec.Decode(&n); err != nil {
		return err
	}
	k, err := ns.KindOf(n.Kind)
	if err != nil {
		return err
	}
	if k.Unsupported != "" {
		return fmt.Errorf("the image holds a %s namespace: not supported: %s", n.Kind, k.Unsupported)
	}
	s.ns.records[rec.Objref] = &n
	return nil
}

// openSupplied opens the namespaces the caller supplies, once the image's
// are known: each must replace exactly one of them.
func (s *restorer) openSupplied() error {
	if s.opts.Root != "" || len(s.opts.MountMap) > 0 {
		n := 0
		for _, r := range s.ns.records {
			if r.Kind == ckpt.NamespaceMnt {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("a root or mount map is given, but the image has %d mount namespaces of its own, not one", n)
		}
	}
	if len(s.opts.Links) > 0 && !slices.ContainsFunc(slices.Collect(maps.Values(s.ns.records)), func(r *ckpt.Namespace) bool { return r.Kind == ckpt.NamespaceNet }) {
		var given []string
		for name, host := range s.opts.Links {
			given = append(given, name+"="+host)
		}
		slices.Sort(given)
		return fmt.Errorf("links are supplied (%s), but the image has no network namespace of its own", strings.Join(given, ", "))
	}
	for kind, src := range s.opts.Namespaces {
		k, err := ns.KindOf(kind)
		if err != nil {
			return err
		}
		if k.Name == ckpt.NamespacePid || k.Name == ckpt.NamespaceUser || k.Unsupported != "" {
			return fmt.Errorf("a %s namespace cannot be supplied", kind)
		}
		n := 0
		for _, r := range s.ns.records {
			if r.Kind == kind {
				n++
			}
		}
		switch {
		case n == 0:
			return fmt.Errorf("a %s namespace is supplied (%s), but the image has none of its own", kind, src.Path)
		case n > 1:
			return fmt.Errorf("a %s namespace is supplied (%s), but the image has %d: which one it replaces is not said", kind, src.Path, n)
		}
		f, err := src.Open(int(k.CloneFlag))
		if err != nil {
			return fmt.Errorf("supplied %s namespace: %w", kind, err)
		}
		s.ns.supplied[kind] = f
	}
	return nil
}

// closeNamespaces lets go of crsub's fds on the namespaces.
func (s *restorer) closeNamespaces() {
	if err := s.ns.ctx.Close(); err != nil {
		s.log.Warn("releasing what the namespaces' restore held", "err", err)
	}
	for _, n := range s.ns.made {
		if err := n.Close(); err != nil {
			s.log.Warn("closing a namespace", "namespace", n, "err", err)
		}
	}
	for kind, f := range s.ns.supplied {
		if f != nil {
			f.Close()
		}
		delete(s.ns.supplied, kind)
	}
}

// forChildren is the namespace of kind k process p's children are made
// in.
func forChildren(p *ckpt.Process, k *ns.Kind) ckpt.Objref {
	if ref, ok := p.Namespaces[k.Name+"_for_children"]; ok {
		return ref
	}
	return p.Namespaces[k.Name]
}

// inherited is the namespace of kind k a child of parent (nil: crsub) is
// in unless something is done.
func inherited(parent *task, k *ns.Kind) ckpt.Objref {
	if parent == nil {
		return 0
	}
	if k.ForChildren {
		return forChildren(parent.process, k)
	}
	return parent.process.Namespaces[k.Name]
}

// record is the image's record of namespace ref.
func (s *restorer) nsRecord(ref ckpt.Objref) (*ckpt.Namespace, error) {
	r, ok := s.ns.records[ref]
	if !ok {
		return nil, fmt.Errorf("namespace objref %d has no namespace record", ref)
	}
	return r, nil
}

// cloneFlags are the namespaces the clone creating process p makes: those
// of the kinds made so that it is not in with its parent, that no task
// made before and the caller does not supply; for the root, a pid
// namespace it is the init of.
func (s *restorer) cloneFlags(p *ckpt.Process, parent *task) uint64 {
	var flags uint64
	for _, k := range ns.Kinds {
		want := p.Namespaces[k.Name]
		if want == 0 || want == inherited(parent, k) || s.ns.made[want] != nil || s.ns.supplied[k.Name] != nil {
			continue
		}
		if k.Unshared || (k.ForChildren && parent != nil) {
			continue
		}
		if k.ForChildren && k.Name != ckpt.NamespacePid {
			continue // a root's time namespace: unshare and setns (enterNamespaces)
		}
		flags |= k.CloneFlag
	}
	if parent == nil && s.opts.PidNamespace {
		flags |= unix.CLONE_NEWPID
	}
	return flags
}

// beforeFork makes, in parent, the pid and time namespaces its child p is
// the first process of, for its children: the fork puts p in them. The
// function returned puts the parent back in its own for its children
// where it had those, after the fork.
func (s *restorer) beforeFork(parent *task, p *ckpt.Process) (func() error, error) {
	var back []*ns.Kind
	undo := func() error {
		for _, k := range back {
			if err := parent.joinOwn(k); err != nil {
				return fmt.Errorf("pid %d back in its own %s namespace for its children: %w", parent.pid, k.Name, err)
			}
		}
		return nil
	}
	for _, k := range ns.Kinds {
		want := p.Namespaces[k.Name]
		if !k.ForChildren || want == inherited(parent, k) {
			continue
		}
		if want == 0 {
			return undo, fmt.Errorf("pid %d is in crsub's %s namespace, its parent %d makes its children in another", p.Pid, k.Name, parent.pid)
		}
		if s.ns.made[want] != nil || s.ns.supplied[k.Name] != nil {
			return undo, fmt.Errorf("pid %d is in a %s namespace made for another process: not supported", p.Pid, k.Name)
		}
		if err := s.unshareFor(parent, k, want); err != nil {
			return undo, err
		}
		if forChildren(parent.process, k) == parent.process.Namespaces[k.Name] {
			back = append(back, k)
		}
	}
	return undo, nil
}

// unshareFor makes namespace ref of kind k by unshare in t, for its
// children, and sets what must be set before anyone enters it.
func (s *restorer) unshareFor(t *task, k *ns.Kind, ref ckpt.Objref) error {
	rec, err := s.nsRecord(ref)
	if err != nil {
		return err
	}
	if err := t.syscalls(func(call syscaller) error {
		_, err := call(unix.SYS_UNSHARE, k.CloneFlag)
		return err
	}); err != nil {
		return fmt.Errorf("%s namespace %d: unshare in pid %d: %w", k.Name, rec.Inode, t.pid, err)
	}
	if k.OpensWhenEntered {
		return nil // taken from the first task in it (enterNamespaces)
	}
	n, err := s.madeIn(t, k, k.Name+"_for_children", ref, rec)
	if err != nil {
		return err
	}
	if k.PrepareNew != nil {
		if err := k.PrepareNew(s.ns.ctx, rec, t.host); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return s.fill(n)
}

// madeIn takes the namespace /proc/HOST/ns/NAME of task t as the one
// image namespace ref became.
func (s *restorer) madeIn(t *task, k *ns.Kind, name string, ref ckpt.Objref, rec *ckpt.Namespace) (*ns.Restored, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", t.host, name))
	if err != nil {
		return nil, fmt.Errorf("%s namespace %d made in pid %d: %w", k.Name, rec.Inode, t.pid, err)
	}
	n := ns.NewRestored(ref, *rec, k, f, false)
	n.Task = t.host
	s.ns.made[ref] = n
	owner, err := s.userNamespace(rec.Owner)
	if err == nil {
		err = ns.CheckOwner(n, owner)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	return n, nil
}

// userNamespace is the user namespace of the image with inode at
// checkpoint, made again (nil: 0, crsub's).
func (s *restorer) userNamespace(inode uint64) (*ns.Restored, error) {
	if inode == 0 {
		return nil, nil
	}
	for _, n := range s.ns.made {
		if n.Kind.Name == ckpt.NamespaceUser && n.Record.Inode == inode {
			return n, nil
		}
	}
	return nil, fmt.Errorf("its owner, user namespace %d, is not made", inode)
}

// userMaps is the record of the user namespace of the image process p is
// in, nil if it is in crsub's.
func (s *restorer) userMaps(p *ckpt.Process) *ckpt.UserNamespace {
	if r := s.ns.records[p.Namespaces[ckpt.NamespaceUser]]; r != nil {
		return r.User
	}
	return nil
}

// fill restores what a namespace made again held.
func (s *restorer) fill(n *ns.Restored) error {
	if n.Kind.Restore == nil {
		return nil
	}
	if err := n.Kind.Restore(s.ns.ctx, n); err != nil {
		return fmt.Errorf("%s: %w", n, err)
	}
	return nil
}

// enterNamespaces puts task t, just created for process p by a clone with
// flags, in p's namespaces: those the clone made are taken, the others
// made, joined or supplied. Then the namespaces p had for its children
// are made.
func (s *restorer) enterNamespaces(t *task, p *ckpt.Process, flags uint64) error {
	for _, k := range ns.Kinds {
		want := p.Namespaces[k.Name]
		if want == inherited(t.parent, k) {
			if want != 0 && k.OpensWhenEntered && s.ns.made[want] == nil {
				// The parent made it for its children, and this is the
				// first task in it: it can be taken now.
				if err := s.takeEntered(t, k, want); err != nil {
					return err
				}
			}
			continue
		}
		if want == 0 {
			return fmt.Errorf("pid %d is in crsub's %s namespace, its parent %d in another", t.pid, k.Name, t.parent.pid)
		}
		if k.ForChildren && t.parent != nil {
			// Made by the parent for it (beforeFork), to be taken from it
			// if it could not be opened before.
			if s.ns.made[want] == nil {
				if err := s.takeEntered(t, k, want); err != nil {
					return err
				}
			}
			continue
		}
		if err := s.enter(t, k, want, flags); err != nil {
			return err
		}
	}
	for _, k := range ns.Kinds {
		fc, own := p.Namespaces[k.Name+"_for_children"], p.Namespaces[k.Name]
		if !k.ForChildren || fc == 0 || fc == own {
			continue
		}
		if n := s.ns.made[fc]; n != nil {
			if k.Name != ckpt.NamespacePid {
				return fmt.Errorf("pid %d makes its children in %s, made for another process: not supported", t.pid, n)
			}
			if err := t.join(n.File(), k); err != nil {
				return fmt.Errorf("pid %d joining %s for its children: %w", t.pid, n, err)
			}
			continue
		}
		if err := s.unshareFor(t, k, fc); err != nil {
			return err
		}
	}
	return nil
}

// takeEntered takes namespace ref of kind k, which could not be opened
// until a task entered it, from t, the first task in it, and fills it.
func (s *restorer) takeEntered(t *task, k *ns.Kind, ref ckpt.Objref) error {
	rec, err := s.nsRecord(ref)
	if err != nil {
		return err
	}
	n, err := s.madeIn(t, k, k.Name, ref, rec)
	if err != nil {
		return err
	}
	return s.fill(n)
}

// enter puts t in namespace ref of kind k: made by its clone (flags), made
// before for another task, supplied, or to be made now.
func (s *restorer) enter(t *task, k *ns.Kind, ref ckpt.Objref, flags uint64) error {
	rec, err := s.nsRecord(ref)
	if err != nil {
		return err
	}
	if n := s.ns.made[ref]; n != nil {
		if err := t.join(n.File(), k); err != nil {
			return fmt.Errorf("pid %d joining %s: %w", t.pid, n, err)
		}
		return nil
	}
	if f := s.ns.supplied[k.Name]; f != nil {
		if err := t.join(f, k); err != nil {
			return fmt.Errorf("pid %d joining the supplied %s namespace: %w", t.pid, k.Name, err)
		}
		s.ns.supplied[k.Name] = nil
		s.ns.made[ref] = ns.NewRestored(ref, *rec, k, f, true)

		return nil
	}
	if flags&k.CloneFlag == 0 {
		if k.PrepareTask != nil {
			if err := k.PrepareTask(s.ns.ctx, rec, t.host); err != nil {
				return fmt.Errorf("%s namespace %d: %w", k.Name, rec.Inode, err)
			}
		}
		// A root's time namespace is made for its children, set, and
		// then entered.
		if k.ForChildren {
			if err := s.unshareFor(t, k, ref); err != nil {
				return err
			}
			return t.join(s.ns.made[ref].File(), k)
		}
		if err := t.syscalls(func(call syscaller) error {
			_, err := call(unix.SYS_UNSHARE, k.CloneFlag)
			return err
		}); err != nil {
			return fmt.Errorf("%s namespace %d: unshare in pid %d: %w", k.Name, rec.Inode, t.pid, err)
		}
	}
	n, err := s.madeIn(t, k, k.Name, ref, rec)
	if err != nil {
		return err
	}
	if err := s.fill(n); err != nil {
		return err
	}
	if k.Name == ckpt.NamespaceUser {
		return t.becomeRootIn(rec.User)
	}
	return nil
}

// becomeRootIn makes task t, just put in user namespace u with its maps
// written, its root (uid and gid 0, no groups, where u maps them), as CRIU
// does (prepare_userns_creds): crsub's ids it came with are no one there,
// and what it makes (sockets, files) until it gets its own is made as
// root of the namespace, the image's ids coming last (restoreCreds). It is
// made dumpable again, which the change of ids undid, so that crsub's
// /proc files of it stay reachable from inside.
func (t *task) becomeRootIn(u *ckpt.UserNamespace) error {
	return t.syscalls(func(call syscaller) error {
		var steps [][]uint64
		if inside(u.GidMap, 0) {
			steps = append(steps, []uint64{unix.SYS_SETRESGID, 0, 0, 0})
			if u.Setgroups == "allow" {
				steps = append(steps, []uint64{unix.SYS_SETGROUPS, 0, 0})
			}
		}
		if inside(u.UidMap, 0) {
			steps = append(steps, []uint64{unix.SYS_SETRESUID, 0, 0, 0})
		}
		steps = append(steps, []uint64{unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 1, 0, 0, 0})
		for _, st := range steps {
			if _, err := call(int(st[0]), st[1:]...); err != nil {
				return fmt.Errorf("pid %d becoming root of its user namespace: syscall %d: %w", t.pid, st[0], err)
			}
		}
		return nil
	})
}

// inside says whether id of a user namespace is mapped by m.
func inside(m []ckpt.IDMap, id uint32) bool {
	for _, l := range m {
		if id >= l.Inside && id-l.Inside < l.Count {
			return true
		}
	}
	return false
}

// syscaller runs a system call in a task.
type syscaller func(nr int, args ...uint64) (uint64, error)

// syscalls runs fn with system calls in task t: in its prepared address
// space, or, before it is, borrowing its code for the moment.
func (t *task) syscalls(fn func(call syscaller) error) error {
	if t.remote != nil {
		return fn(t.Syscall)
	}
	r, err := remote.New(t.tracee)
	if err != nil {
		return err
	}
	err = fn(r.Syscall)
	if rerr := r.Restore(); err == nil {
		err = rerr
	}
	return err
}

// join makes task t join namespace f (crsub's fd on it) of kind k: it
// takes a copy of the fd through its pidfd of crsub.
func (t *task) join(f *os.File, k *ns.Kind) error {
	if t.inUserNamespace() {
		// Handed over instead (passfd.go).
		return t.injecting(func(in injection) error {
			fd, err := t.pass(in, int(f.Fd()))
			if err != nil {
				return err
			}
			_, err = in.call(unix.SYS_SETNS, uint64(fd), k.CloneFlag)
			_, cerr := in.call(unix.SYS_CLOSE, uint64(fd))
			return errors.Join(err, cerr)
		})
	}
	return t.syscalls(func(call syscaller) error {
		fd, err := call(unix.SYS_PIDFD_GETFD, uint64(t.callerPidfd), uint64(f.Fd()), 0)
		if err != nil {
			return fmt.Errorf("pidfd_getfd: %w", err)
		}
		_, err = call(unix.SYS_SETNS, fd, k.CloneFlag)
		_, cerr := call(unix.SYS_CLOSE, fd)
		return errors.Join(err, cerr)
	})
}

// inUserNamespace says whether task t is in a user namespace of the image:
// it cannot take crsub's fds (pidfd_getfd needs ptrace rights over crsub,
// which nothing in a user namespace below crsub's has).
func (t *task) inUserNamespace() bool {
	return t.process != nil && t.process.Namespaces[ckpt.NamespaceUser] != 0
}

// joinOwn puts task t back in its own namespace of kind k for its
// children.
func (t *task) joinOwn(k *ns.Kind) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", t.host, k.Name))
	if err != nil {
		return err
	}
	defer f.Close()
	return t.join(f, k)
}

// restoreNamespaceObject restores a record a namespace kind wrote for what
// a namespace holds, in the namespace it depends on (one the caller
// supplied too: the kind decides what to do with it).
func (s *restorer) restoreNamespaceObject(rec *ckpt.Record, restore func(*ns.RestoreContext, *ns.Restored, *ckpt.Record) error) error {
	for _, d := range rec.Deps {
		n := s.ns.made[d]
		if n == nil {
			continue
		}
		return restore(s.ns.ctx, n, rec)
	}
	return fmt.Errorf("%s record before the namespace it belongs to is made", rec.Type)
}

// mountNamespace is the mount namespace of the image task t is in, made
// again by this restart; nil if it is in crsub's.
func (t *task) mountNamespace() *ns.Restored {
	if t.process == nil {
		return nil
	}
	n := t.s.ns.made[t.process.Namespaces[ckpt.NamespaceMnt]]
	if n == nil || n.Supplied {
		return nil
	}
	return n
}

// hostPath is how crsub reaches path as task t names it: a relative path
// through its working directory, an absolute one through its root when it
// is in a mount namespace of the image, whose paths are from its root.
func (t *task) hostPath(path string) string {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Sprintf("/proc/%d/cwd/%s", t.host, path)
	case t.mountNamespace() == nil:
		return path
	}
	return fmt.Sprintf("/proc/%d/root%s", t.host, path)
}

// procPidNamespace is, for a proc the restart made anew in t's mount
// namespace (its device number at checkpoint), the pid namespace it shows
// (nil: crsub's).
func (t *task) procPidNamespace(dev uint64) (*os.File, bool) {
	if n := t.mountNamespace(); n != nil {
		return n.ProcPidNamespace(t.s.ns.ctx, dev)
	}
	return nil, false
}

// newDevice is, for a filesystem the restart made anew in t's mount
// namespace (its device number at checkpoint), its device number now.
func (t *task) newDevice(dev uint64) (uint64, bool) {
	if n := t.mountNamespace(); n != nil {
		return n.NewDevice(dev)
	}
	return 0, false
}

// inMountNamespace is how crsub reaches path in the mount namespace of
// the image with inode at checkpoint, made again.
func (s *restorer) inMountNamespace(inode uint64, path string) (string, bool) {
	for _, n := range s.ns.made {
		if n.Kind.Name == ckpt.NamespaceMnt && n.Record.Inode == inode && !n.Supplied {
			if root, ok := n.RootPath(); ok {
				return root + path, true
			}
		}
	}
	return "", false
}

// movedDevice is, for a filesystem from outside mounted again since the
// checkpoint in t's mount namespace, its device number now.
func (t *task) movedDevice(dev uint64) (uint64, bool) {
	if n := t.mountNamespace(); n != nil {
		return n.MovedDevice(dev)
	}
	return 0, false
}

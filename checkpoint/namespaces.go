package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/crsub/crsub/internal/files"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/ns"
)

// A process's namespaces other than crsub's are recorded once each
// (ckpt.Namespace), in the order first met, and named by the processes in
// them; a restart makes them again. What a kind cannot do yet is refused
// by name before the tree is frozen (checkNamespaces), and again for each
// process collected, which may have been forked since.

// nsEntry is one entry of /proc/PID/ns/ a process's namespaces are read
// from: a kind's own, or the one a process chose for its children.
type nsEntry struct {
	name string
	kind *ns.Kind
}

// nsEntries lists them: for a kind with a namespace for children, that one
// first, from which a time namespace's offsets are read.
func nsEntries() []nsEntry {
	var out []nsEntry
	for _, k := range ns.Kinds {
		if k.ForChildren {
			out = append(out, nsEntry{k.Name + "_for_children", k})
		}
		out = append(out, nsEntry{k.Name, k})
	}
	return out
}

// nsKey names a namespace: its kind and inode.
type nsKey struct {
	kind  string
	inode uint64
}

// recordedNamespace is a namespace the image records.
type recordedNamespace struct {
	kind *ns.Kind
	rec  ckpt.Namespace
	ref  ckpt.Objref
}

// namespaces are the namespaces met while collecting the tree.
type namespaces struct {
	// own are crsub's, by kind.
	own map[string]uint64
	// byKey and list are those recorded, list in the order first met.
	byKey map[nsKey]*recordedNamespace
	list  []*recordedNamespace
	// legacyPid is the root's pid namespace when its init is not in the
	// tree: not recorded, the tree is restarted as before (TreeProcess
	// NsPid, restart --pidns).
	legacyPid uint64
	dump      *ns.DumpContext
}

// ownNamespaces reads crsub's namespaces.
func ownNamespaces() (map[string]uint64, error) {
	own := map[string]uint64{}
	for _, k := range ns.Kinds {
		ino, err := ns.Inode(os.Getpid(), k.Name)
		if errors.Is(err, os.ErrNotExist) {
			continue // a kernel without this kind
		}
		if err != nil {
			return nil, err
		}
		own[k.Name] = ino
	}
	return own, nil
}

// NamespaceError is a process in a namespace crsub cannot checkpoint.
type NamespaceError struct {
	Pid   int
	Kind  string // "mnt", "user", "pid"…
	Inode uint64
	// Reason says what is missing; Err, if set, is the error that said
	// it (an *ns.MountError).
	Reason string
	Err    error
}

func (e *NamespaceError) Error() string {
	return fmt.Sprintf("pid %d is in a %s namespace of its own (%d): not supported: %s", e.Pid, e.Kind, e.Inode, e.Reason)
}

func (e *NamespaceError) Unwrap() error { return e.Err }

// checkNamespaces refuses, before anything is done to them, the processes
// of the tree under root that are in namespaces crsub cannot checkpoint.
func checkNamespaces(root int, own map[string]uint64) error {
	checked := map[nsKey]bool{}
	for _, pid := range listTree(root) {
		mine, err := namespacesOf(pid, own)
		if err != nil && !gone(pid) {
			return err
		}
		for _, e := range nsEntries() {
			ino, ok := mine[e.name]
			if !ok || e.kind.Check == nil || checked[nsKey{e.kind.Name, ino}] {
				continue
			}
			checked[nsKey{e.kind.Name, ino}] = true
			if err := e.kind.Check(pid); err != nil && !gone(pid) {
				return &NamespaceError{Pid: pid, Kind: e.kind.Name, Inode: ino, Reason: err.Error(), Err: err}
			}
		}
	}
	return nil
}

// gone says whether process pid has ended.
func gone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err != nil
}

// namespacesOf reads the namespaces of process pid that are not crsub's,
// by /proc/PID/ns/ entry name, refusing the kinds not supported yet.
func namespacesOf(pid int, own map[string]uint64) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, e := range nsEntries() {
		ours, ok := own[e.kind.Name]
		if !ok {
			continue
		}
		ino, err := ns.Inode(pid, e.name)
		if errors.Is(err, os.ErrNotExist) {
			// A zombie has no namespaces left to show; it is made again
			// by its parent, in the parent's.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s namespace: %w", e.name, err)
		}
		if ino == ours {
			continue
		}
		if e.kind.Unsupported != "" {
			return nil, &NamespaceError{Pid: pid, Kind: e.kind.Name, Inode: ino, Reason: e.kind.Unsupported}
		}
		out[e.name] = ino
	}
	return out, nil
}

// collect reads frozen process pid's namespaces, records those not met
// before, and returns them by entry name. nspid are its pids from crsub's
// pid namespace down (/proc/PID/status NSpid); root says it is the root
// of the tree.
func (n *namespaces) collect(pid int, root bool, nspid []int) (map[string]uint64, error) {
	mine, err := namespacesOf(pid, n.own)
	if err != nil {
		return nil, err
	}
	if ino, ok := mine[ckpt.NamespacePid]; ok {
		if len(nspid) > 2 {
			return nil, &NamespaceError{Pid: pid, Kind: ckpt.NamespacePid, Inode: ino, Reason: "pid namespaces nested more than one deep below crsub's are not supported yet"}
		}
		if root && nspid[len(nspid)-1] != 1 {
			// A tree inside a pid namespace it is not the init of.
			n.legacyPid = ino
		}
	}
	for _, e := range nsEntries() {
		ino, ok := mine[e.name]
		if !ok {
			continue
		}
		if e.kind.Name == ckpt.NamespacePid && ino == n.legacyPid {
			delete(mine, e.name)
			continue
		}
		key := nsKey{e.kind.Name, ino}
		if _, ok := n.byKey[key]; ok {
			continue
		}
		r := &recordedNamespace{kind: e.kind, rec: ckpt.Namespace{Kind: e.kind.Name, Inode: ino, Pid: pid}}
		if err := n.owner(&r.rec, e.name, mine[ckpt.NamespaceUser]); err != nil {
			return nil, err
		}
		if e.kind.Dump != nil {
			if err := e.kind.Dump(n.dump, &r.rec, pid); err != nil {
				return nil, fmt.Errorf("%s namespace %d: %w", e.kind.Name, ino, err)
			}
		}
		n.byKey[key] = r
		n.list = append(n.list, r)
	}
	return mine, nil
}

// owner records which user namespace owns namespace rec, entry name of
// its first process: a restart makes it in that process, which owns it
// then to the user namespace it is in (user, 0: crsub's). One owned by
// another user namespace is refused by name. A user namespace's owner is
// its parent, crsub's (its kind's Check).
func (n *namespaces) owner(rec *ckpt.Namespace, name string, user uint64) error {
	if rec.Kind == ckpt.NamespaceUser {
		return nil
	}
	owner, err := ns.Owner(rec.Pid, name)
	if err != nil {
		return fmt.Errorf("%s namespace %d: %w", rec.Kind, rec.Inode, err)
	}
	switch owner {
	case n.own[ckpt.NamespaceUser]:
		if user == 0 {
			return nil
		}
	case user:
		rec.Owner = owner
		return nil
	}
	mine := "crsub's"
	if user != 0 {
		mine = fmt.Sprintf("%d", user)
	}
	return &NamespaceError{Pid: rec.Pid, Kind: rec.Kind, Inode: rec.Inode,
		Reason: fmt.Sprintf("it is owned by user namespace %d, not by the one its first process is in (%s), in which a restart makes it", owner, mine)}
}

// checkTree refuses what the namespaces of the collected tree make
// impossible to restart: a pid namespace whose init is not in the tree
// (but the one the whole tree is in), a process in a pid or time namespace
// made neither for it nor by its parent for its children, a process back
// in crsub's namespace of a kind its parent is not in.
func (n *namespaces) checkTree(procs []*proc) error {
	byPid := map[int]*proc{}
	for _, p := range procs {
		byPid[p.pid] = p
	}
	inits := map[uint64]bool{}
	for _, p := range procs {
		if ino, ok := p.state.namespaces[ckpt.NamespacePid]; ok && p.state.tree.NsPid == 1 {
			inits[ino] = true
		}
	}
	for _, p := range procs {
		mine := p.state.namespaces
		if ino, ok := mine[ckpt.NamespacePid]; ok && !inits[ino] {
			return &NamespaceError{Pid: p.pid, Kind: ckpt.NamespacePid, Inode: ino, Reason: "its init is not in the tree"}
		}
		parent := byPid[p.ppid]
		if parent == nil {
			continue
		}
		theirs := parent.state.namespaces
		for _, k := range ns.Kinds {
			from := k.Name
			if k.ForChildren {
				from += "_for_children"
			}
			if theirs[from] != 0 && mine[k.Name] == 0 {
				return &NamespaceError{Pid: p.pid, Kind: k.Name, Inode: n.own[k.Name], Reason: fmt.Sprintf("it is back in crsub's, while its parent %d is in another", p.ppid)}
			}
			// A new one made for it (clone with CLONE_NEWPID) is made
			// again so; another is one it could not have been forked in.
			if ino := mine[k.Name]; k.ForChildren && ino != theirs[from] && ino != 0 && n.byKey[nsKey{k.Name, ino}].rec.Pid != p.pid {
				return &NamespaceError{Pid: p.pid, Kind: k.Name, Inode: mine[k.Name], Reason: fmt.Sprintf("it is not the one its parent %d makes its children in", p.ppid)}
			}
		}
	}
	return nil
}

// write writes the namespace records, before any process record.
func (n *namespaces) write(cw *ckpt.Writer) error {
	n.dump.Networks = map[uint64]int{}
	for _, r := range n.list {
		if r.kind.Name == ckpt.NamespaceNet {
			n.dump.Networks[r.rec.Inode] = r.rec.Pid
		}
	}
	for _, r := range n.list {
		r.ref = cw.NewObjref()
		if err := cw.Write(ckpt.TypeNamespace, r.ref, nil, &r.rec); err != nil {
			return err
		}
	}
	return nil
}

// refs names the recorded namespaces of a process (entries by name, as
// collect returned them) by their objrefs, and lists those objrefs for
// its record's dependencies.
func (n *namespaces) refs(mine map[string]uint64) (map[string]ckpt.Objref, []ckpt.Objref) {
	if len(mine) == 0 {
		return nil, nil
	}
	out := map[string]ckpt.Objref{}
	var deps []ckpt.Objref
	for _, e := range nsEntries() {
		ino, ok := mine[e.name]
		if !ok {
			continue
		}
		r := n.byKey[nsKey{e.kind.Name, ino}]
		out[e.name] = r.ref
		if !slices.Contains(deps, r.ref) {
			deps = append(deps, r.ref)
		}
	}
	return out, deps
}

// writeObjects writes what the namespaces process pid makes hold (their
// kinds' DumpObjects), after its process record.
func (n *namespaces) writeObjects(pid int) error {
	for _, r := range n.list {
		if r.rec.Pid != pid || r.kind.DumpObjects == nil {
			continue
		}
		if err := r.kind.DumpObjects(n.dump, &r.rec, r.ref); err != nil {
			return fmt.Errorf("%s namespace %d: %w", r.kind.Name, r.rec.Inode, err)
		}
	}
	return nil
}

// lockNetworks locks the network namespaces recorded whole (package
// netlock) before their processes are killed; a restart that joins one
// unlocks it.
func (n *namespaces) lockNetworks(log *slog.Logger) {
	for _, r := range n.list {
		if r.kind.Name != ckpt.NamespaceNet {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", r.rec.Pid))
		if err == nil {
			err = netlock.LockNamespace(int(f.Fd()))
			f.Close()
		}
		if err != nil {
			log.Warn("cannot lock the network namespace: its peers may see connections reset until the restart", "namespace", r.rec.Inode, "err", err)
		}
	}
}

// mountNamespaceOf is the inode of the recorded mount namespace that
// mount mntID is in, when that is not process pid's.
func (n *namespaces) mountNamespaceOf(pid, mntID int) (uint64, bool) {
	own, err := ns.Inode(pid, ckpt.NamespaceMnt)
	if err != nil {
		return 0, false
	}
	for _, r := range n.list {
		if r.kind.Name != ckpt.NamespaceMnt || r.rec.Mnt == nil || r.rec.Inode == own {
			continue
		}
		for _, m := range r.rec.Mnt.Mounts {
			if m.ID == mntID {
				return r.rec.Inode, true
			}
		}
	}
	return 0, false
}

// mountsOf lists the recorded mounts of filesystem dev, the namespace of
// those in pid's own as 0.
func (n *namespaces) mountsOf(pid int, dev uint64) []files.MountView {
	if n == nil {
		return nil
	}
	own, err := ns.Inode(pid, ckpt.NamespaceMnt)
	if err != nil {
		return nil
	}
	var out []files.MountView
	for _, r := range n.list {
		if r.kind.Name != ckpt.NamespaceMnt || r.rec.Mnt == nil {
			continue
		}
		inode := r.rec.Inode
		if inode == own {
			inode = 0
		}
		for _, m := range r.rec.Mnt.Mounts {
			if m.Dev == dev && !m.File {
				out = append(out, files.MountView{Namespace: inode, Pid: r.rec.Pid, Path: m.Path, Root: m.Root})
			}
		}
	}
	return out
}

// elsewhere is the identity of the file dev:ino, named path by process
// pid, when the root of another recorded mount namespace shows it there
// and pid's does not: a file it mapped or executed before it left that
// namespace.
func (n *namespaces) elsewhere(pid int, path string, dev, ino uint64) (ckpt.FileIdentity, bool) {
	if n == nil {
		return ckpt.FileIdentity{}, false
	}
	own, err := ns.Inode(pid, ckpt.NamespaceMnt)
	if err != nil {
		return ckpt.FileIdentity{}, false
	}
	for _, r := range n.list {
		if r.kind.Name != ckpt.NamespaceMnt || r.rec.Inode == own || r.rec.Pid == 0 {
			continue
		}
		id, err := identity(r.rec.Pid, path)
		if err == nil && id.Dev == dev && id.Inode == ino {
			id.MountNamespace = r.rec.Inode
			return id, true
		}
	}
	return ckpt.FileIdentity{}, false
}

package criurpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// restore serves RESTORE and returns the restored root's pid. The tree
// runs when it returns (CRIU restores detached over RPC); with
// rst_sibling it is the runtime's child, else crsub's, and reparented when
// crsub exits.
//
// The runtime hears of each phase as from CRIU: pre-restore before
// anything, setup-namespaces and post-setup-namespaces once every task
// exists (with the root's pid), post-restore and pre-resume when all is
// restored and nothing runs yet, post-resume after.
func (s *session) restore(ctx context.Context, r *Request) (pid int, err error) {
	start := time.Now()
	w, err := s.workspace(r)
	if err != nil {
		return 0, err
	}
	defer w.close()
	defer func() {
		if err != nil {
			w.failed(err)
		}
	}()
	log := w.log
	supplied := map[string]substitute.Namespace{}
	for _, j := range r.JoinNamespaces {
		if err := supplyNamespace(supplied, "join_ns", j.Ns, j.File); err != nil {
			return 0, err
		}
	}
	if err := s.notify(r, log, "pre-restore", 0, -1); err != nil {
		return 0, err
	}
	img, err := os.Open(ImageName)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	opts := restart.DefaultOptions()
	opts.Log = log
	opts.ImageDir = "."
	opts.Sibling = r.Sibling
	opts.CgroupRoots = cgroupRoots(r.CgroupRoots)
	inv, err := ckpt.Inspect(bufio.NewReader(img))
	if err != nil {
		return 0, err
	}
	if _, err := img.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	mnt, net := imageNamespace(inv, ckpt.NamespaceMnt), imageNamespace(inv, ckpt.NamespaceNet)
	// A pid namespace the image records is made again with it.
	opts.PidNamespace = len(inv.Tree.Processes) > 0 && inv.Tree.Processes[0].NsPid == 1 && imageNamespace(inv, ckpt.NamespacePid) == nil
	if opts.Root, opts.MountMap, err = restoreMounts(r, mnt); err != nil {
		return 0, err
	}
	if len(r.InheritFds) > 0 || r.OrphanPtsMaster {
		files, err := inheritedFiles(r.InheritFds, supplied)
		if err != nil {
			return 0, err
		}
		var unused []string
		opts.Substitutes, opts.ProcessSubstitutes, unused = inheritSubstitutes(inv, files)
		for _, key := range unused {
			// As CRIU: an inherited fd the image has no use for is not
			// an error (runc passes all of its container's stdio).
			log.Info("inherit_fd matches no file of the image", "key", key)
		}
		if r.OrphanPtsMaster {
			if err := orphanTerminals(inv, opts.Substitutes, opts.ProcessSubstitutes); err != nil {
				return 0, err
			}
		}
	}
	// runc asks for an empty network namespace even when it passes the
	// one to join: that one is taken as it is.
	if _, joined := supplied["net"]; r.EmptyNet && !joined {
		if err := emptyNetwork(net); err != nil {
			return 0, err
		}
	}
	if len(supplied) > 0 {
		log.Info("restoring into the namespaces given", "namespaces", supplied)
		opts.Namespaces = supplied
	}
	opts.TasksCreated = func(pids []int) error {
		if err := s.notify(r, log, "setup-namespaces", pids[0], -1); err != nil {
			return err
		}
		return s.notify(r, log, "post-setup-namespaces", 0, -1)
	}
	opts.BeforeRelease = func(pids []int) error {
		if err := s.notify(r, log, "post-restore", pids[0], -1); err != nil {
			return err
		}
		return s.notify(r, log, "pre-resume", 0, -1)
	}
	p, err := restart.Restart(ctx, bufio.NewReader(img), opts)
	if errors.Is(err, restart.ErrExternal) {
		return 0, fmt.Errorf("%w; a runtime gives its own fd for it with inherit_fd, keyed as CRIU names the file (pipe:[INODE], socket:[INODE], tty[RDEV:DEV], its path without the leading /)", err)
	}
	if err != nil {
		return 0, err
	}
	if err := s.notify(r, log, "post-resume", 0, -1); err != nil {
		// The tree runs: as CRIU, only say so.
		log.Error("after the restore", "err", err)
	}
	total := time.Since(start)
	log.Info("restore complete", "pid", p.Pid, "pids", p.Pids, "total", total)
	if r.DisplayStats {
		log.Warn(fmt.Sprintf("Restore time: %d us", total.Microseconds()))
	}
	if err := writeStats(w, statsRestore, &rpcpb.StatsEntry{Restore: restoreStats(total)}); err != nil {
		log.Warn("cannot write the statistics", "err", err)
	}
	return p.Pid, nil
}

// imageNamespace is the image's namespace of kind, nil if its tree is in
// crsub's (or the image records several: a runtime's container has one of
// each).
func imageNamespace(inv *ckpt.Inventory, kind string) *ckpt.NamespaceView {
	var found *ckpt.NamespaceView
	for _, n := range inv.Namespaces {
		if n.Namespace.Kind != kind {
			continue
		}
		if found != nil {
			return nil
		}
		found = n
	}
	return found
}

// restoreMounts maps root and ext_mnt onto the restart's root and mount
// map. A tree in crsub's mount namespace can only be restored into crsub's
// root. In a mount namespace of its own, root is the root filesystem in
// place of the image's (runc binds the container's at a directory of its
// own), and an ext_mnt entry names the mount at a mount point (as the dump
// named it, by its mount point) and the path it shows now: a path other
// than the one the image recorded moves it. Entries for mounts the image
// does not take as external (its cgroup mounts, made anew or bound from
// the cgroups the restart puts the tree in) change nothing, as CRIU
// ignores keys no mount has.
func restoreMounts(r *Request, mnt *ckpt.NamespaceView) (root string, moved map[string]string, err error) {
	if mnt == nil || mnt.Namespace.Mnt == nil {
		if r.Root == "" {
			return "", nil, nil
		}
		st, err := os.Stat(r.Root)
		if err != nil {
			return "", nil, &RefusedError{Field: "root", Reason: err.Error()}
		}
		own, err := os.Stat("/")
		if err != nil {
			return "", nil, err
		}
		if !os.SameFile(st, own) {
			return "", nil, &RefusedError{Field: "root", Reason: fmt.Sprintf("%s is not crsub's root, and the tree was checkpointed in crsub's mount namespace: it is restored there", r.Root)}
		}
		return "", nil, nil
	}
	ms := mnt.Namespace.Mnt.Mounts
	if r.Root != "" && (len(ms) == 0 || ms[0].External == "") {
		return "", nil, &RefusedError{Field: "root", Reason: "the image's root filesystem was made in its mount namespace, not bound from outside: there is nothing to put in its place"}
	}
	for _, e := range r.ExtMounts {
		for _, m := range ms {
			if m.Path != e.Key || m.External == "" || m.FSType == "cgroup" || m.FSType == "cgroup2" || m.External == e.Val {
				continue
			}
			if _, err := os.Stat(e.Val); err != nil {
				return "", nil, &RefusedError{Field: "ext_mnt", Reason: fmt.Sprintf("%s: %v", e.Key, err)}
			}
			if moved == nil {
				moved = map[string]string{}
			}
			moved[m.External] = e.Val
		}
	}
	return r.Root, moved, nil
}

// emptyNetwork checks that what empty_ns leaves out of the image's network
// namespace is nothing crsub would make: the runtime adds its links to the
// new namespace (runc in setup-namespaces), and crsub restores the rest
// as it was (lo up, its addresses, settings), where CRIU leaves lo down
// (criu#590). Links the image has besides are refused: crsub does not
// leave them out yet.
func emptyNetwork(net *ckpt.NamespaceView) error {
	if net == nil {
		return &RefusedError{Field: "empty_ns", Reason: "the image has no network namespace of its own to make anew"}
	}
	if net.Network == nil {
		return nil
	}
	for _, l := range net.Network.Links {
		if l.Kind != ckpt.LinkLoopback && !l.Builtin {
			return &RefusedError{Field: "empty_ns", Reason: fmt.Sprintf("the image's network namespace has link %s (%s): crsub does not leave links out for the runtime to add yet", l.Name, l.Kind)}
		}
	}
	return nil
}

// supplyNamespace takes a namespace to restore the tree into (file, of
// kind): runc passes the network namespace a container joins by path as an
// inherit_fd (extRootNetNS), others may name one with join_ns. crsub's own
// changes nothing (the tree was checkpointed in it, and the image has no
// namespace of that kind to make); another is joined in place of the
// image's namespace of that kind (restart.Options.Namespaces), which the
// restart checks against the image.
func supplyNamespace(supplied map[string]substitute.Namespace, field, kind, file string) error {
	st, err := os.Stat(file)
	if err != nil {
		return &RefusedError{Field: field, Reason: err.Error()}
	}
	own, err := os.Stat("/proc/self/ns/" + kind)
	if err != nil {
		return &RefusedError{Field: field, Reason: fmt.Sprintf("namespace kind %q: %v", kind, err)}
	}
	if os.SameFile(st, own) {
		return nil
	}
	switch kind {
	case "net", "uts", "ipc", "cgroup", "time":
	default:
		return &RefusedError{Field: field, Reason: fmt.Sprintf("%s namespace %s is not crsub's: crsub restores a tree into a %s namespace of its own making, not a given one", kind, file, kind)}
	}
	if _, ok := supplied[kind]; ok {
		return &RefusedError{Field: field, Reason: fmt.Sprintf("a second %s namespace to restore into (%s)", kind, file)}
	}
	supplied[kind] = substitute.Namespace{Path: file}
	return nil
}

// cgroupRoots maps cg_root entries to restart's CgroupRoots: an entry
// for every controller is the root of every hierarchy not named, one with
// ctrl "" the unified hierarchy's (as runc sends it), others their
// controller's.
func cgroupRoots(roots []CgroupRoot) map[string]string {
	if len(roots) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, r := range roots {
		switch {
		case r.Every:
			m[""] = r.Path
		case r.Ctrl == "":
			m[cgroup.Unified] = r.Path
		default:
			m[r.Ctrl] = r.Path
		}
	}
	return m
}

// inheritedFile is an inherit_fd entry with what its fd is.
type inheritedFile struct {
	InheritFd
	// ns is the namespace ("net", "pid"…) the fd is a file of, if it is
	// one: runc passes the namespaces a container joins this way.
	ns string
}

// inheritedFiles looks at the fds inherit_fd names, which the runtime
// passed to crsub at those numbers. A namespace goes to supplied
// (supplyNamespace).
func inheritedFiles(fds []InheritFd, supplied map[string]substitute.Namespace) ([]inheritedFile, error) {
	var out []inheritedFile
	for _, f := range fds {
		if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(f.Fd)); err != nil {
			return nil, &RefusedError{Field: "inherit_fd", Reason: fmt.Sprintf("key %q: crsub was given no fd %d", f.Key, f.Fd)}
		}
		if kind := namespaceKind(f.Fd); kind != "" {
			if err := supplyNamespace(supplied, "inherit_fd", kind, "/proc/self/fd/"+strconv.Itoa(f.Fd)); err != nil {
				return nil, err
			}
			out = append(out, inheritedFile{InheritFd: f, ns: kind})
			continue
		}
		out = append(out, inheritedFile{InheritFd: f})
	}
	return out, nil
}

// namespaceKind is the kind ("net", "uts"…) of the namespace fd is a file
// of, "" if it is none. Opened through a bind mount (/run/netns/NAME, as
// runc passes a network namespace the container joins by path) its name
// is that path, not "net:[INODE]": the kernel is asked.
func namespaceKind(fd int) string {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != unix.NSFS_MAGIC {
		return ""
	}
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return ""
	}
	return map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWPID: "pid",
		unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWTIME: "time", unix.CLONE_NEWUSER: "user"}[t]
}

// inheritSubstitutes finds the files of the image that inherit_fd keys
// name, as CRIU names them ("pipe:[INODE]", "socket:[INODE]",
// "tty[RDEV:DEV]", a path without its leading /), and substitutes the
// inherited fd for the first fd of each file, root's and others' apart:
// the fds that shared the file follow it. It returns the keys that named
// no file of the image (namespaces included: the tree is restored in
// crsub's).
func inheritSubstitutes(inv *ckpt.Inventory, files []inheritedFile) (root map[int]substitute.Source, others map[int]map[int]substitute.Source, unused []string) {
	byKey := map[string]int{}
	for _, f := range files {
		if f.ns == "" {
			byKey[f.Key] = f.Fd
		}
	}
	used := map[string]bool{}
	seen := map[ckpt.Objref]bool{}
	rootPid := 0
	if len(inv.Tree.Processes) > 0 {
		rootPid = inv.Tree.Processes[0].Pid
	}
	for _, p := range inv.Processes {
		for _, fv := range p.Fds {
			if seen[fv.Objref] {
				continue
			}
			key := fileKey(fv)
			fd, ok := byKey[key]
			if !ok || key == "" {
				continue
			}
			seen[fv.Objref] = true
			used[key] = true
			src := substitute.Source{Kind: substitute.KindFD, FD: fd}
			if p.Process.Pid == rootPid {
				if root == nil {
					root = map[int]substitute.Source{}
				}
				root[fv.Fd] = src
				continue
			}
			if others == nil {
				others = map[int]map[int]substitute.Source{}
			}
			if others[p.Process.Pid] == nil {
				others[p.Process.Pid] = map[int]substitute.Source{}
			}
			others[p.Process.Pid][fv.Fd] = src
		}
	}
	for _, f := range files {
		if !used[f.Key] {
			unused = append(unused, f.Key)
		}
	}
	return root, others, unused
}

// fileKey is how CRIU names an image's file for inherit_fd, "" for a file
// it names no way crsub can tell.
func fileKey(fv ckpt.FdView) string {
	f := fv.File
	switch {
	case f.Kind == ckpt.FilePipe:
		return fmt.Sprintf("pipe:[%d]", f.Identity.Inode)
	case strings.HasPrefix(f.Kind, "unix-") || f.Kind == ckpt.FileSocket || f.Kind == ckpt.FileTCP || f.Kind == ckpt.FileUDP:
		return fmt.Sprintf("socket:[%d]", f.Identity.Inode)
	case f.Kind == ckpt.FileTTY:
		return fmt.Sprintf("tty[%x:%x]", f.Rdev, f.Identity.Dev)
	case f.Path != "":
		return strings.TrimPrefix(f.Path, "/")
	}
	return ""
}

// orphanTerminals refuses an image with a terminal whose master was
// outside the tree and no inherited fd for it: CRIU makes a new terminal
// for it and sends its master to the runtime (orphan-pts-master), which
// crsub does not do yet.
func orphanTerminals(inv *ckpt.Inventory, root map[int]substitute.Source, others map[int]map[int]substitute.Source) error {
	rootPid := inv.Tree.Processes[0].Pid
	covered := map[ckpt.Objref]bool{}
	for _, p := range inv.Processes {
		subs := others[p.Process.Pid]
		if p.Process.Pid == rootPid {
			subs = root
		}
		for _, fv := range p.Fds {
			if _, ok := subs[fv.Fd]; ok {
				covered[fv.Objref] = true
			}
		}
	}
	for _, p := range inv.Processes {
		for _, fv := range p.Fds {
			if covered[fv.Objref] || fv.File.Kind != ckpt.FileTTY {
				continue
			}
			return &RefusedError{Field: "orphan_pts_master", Reason: fmt.Sprintf("process %d fd %d is the terminal %s, whose master was outside the tree: crsub does not make a new terminal for it yet (pass the terminal with inherit_fd %q)", p.Process.Pid, fv.Fd, fv.File.Path, fileKey(fv))}
		}
	}
	return nil
}

package criurpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/internal/sys"
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
// exists (with the root's pid), post-restore, network-unlock (a tree in a
// network namespace of its own) and pre-resume when all is restored and
// nothing runs yet, post-resume after.
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
	s.initPid = 0
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
	opts.PidNamespace = newPidNamespace(inv)
	// As CRIU: a container's init gets its pid back only if it is free.
	opts.AnyRootPid = true
	if r.Root != "" || len(r.ExtMounts) > 0 || len(r.JoinNamespaces) > 0 || len(r.InheritFds) > 0 || r.OrphanPtsMaster {
		if err := containerRoot(&opts, inv, r.Root); err != nil {
			return 0, err
		}
		opts.MountMap = mountMap(inv, r.ExtMounts, opts.CgroupRoots, log)
		files, err := inheritedFiles(r.InheritFds)
		if err != nil {
			return 0, err
		}
		var namespaces []suppliedNamespace
		for _, f := range files {
			if f.ns != "" {
				namespaces = append(namespaces, suppliedNamespace{field: "inherit_fd", kind: f.ns, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd)})
			}
		}
		for _, j := range r.JoinNamespaces {
			namespaces = append(namespaces, suppliedNamespace{field: "join_ns", kind: j.Ns, path: j.File})
		}
		if err := supplyNamespaces(&opts, inv, namespaces); err != nil {
			return 0, err
		}
		log.Debug("restoring into what the runtime made", "given", fmt.Sprint(namespaces), "root", opts.Root, "mounts", opts.MountMap, "namespaces", opts.Namespaces)
		var unused []string
		opts.Substitutes, opts.ProcessSubstitutes, unused = inheritSubstitutes(inv, files)
		for _, key := range unused {
			// As CRIU: an inherited fd the image has no use for is not
			// an error (runc passes all of its container's stdio).
			log.Info("inherit_fd matches no file of the image", "key", key)
		}
		switch {
		case r.OrphanPtsMaster && r.Notify && s.conn != nil:
			// As CRIU: a new pty for each terminal whose master was
			// outside, its master sent to the runtime with the
			// notification (runc passes it to its console socket).
			opts.NewTerminal = func(master *os.File) error {
				return s.notify(r, log, "orphan-pts-master", 0, int(master.Fd()))
			}
		case r.OrphanPtsMaster:
			if err := orphanTerminals(inv, opts.Substitutes, opts.ProcessSubstitutes); err != nil {
				return 0, err
			}
		}
	}
	opts.TasksCreated = func(pids []int) error {
		if err := s.notify(r, log, "setup-namespaces", pids[0], -1); err != nil {
			return err
		}
		return s.notify(r, log, "post-setup-namespaces", 0, -1)
	}
	ownNet := slices.ContainsFunc(inv.Namespaces, func(n *ckpt.NamespaceView) bool { return n.Namespace.Kind == ckpt.NamespaceNet })
	opts.BeforeRelease = func(pids []int) error {
		if err := s.notify(r, log, "post-restore", pids[0], -1); err != nil {
			return err
		}
		if ownNet {
			// As CRIU: the connections of a tree in a network
			// namespace of its own may go on.
			if err := s.notify(r, log, "network-unlock", 0, -1); err != nil {
				return err
			}
		}
		return s.notify(r, log, "pre-resume", 0, -1)
	}
	made, veths, err := makeVeths(r.Veths)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			if rerr := veths.remove(); rerr != nil {
				log.Error("after the failed restore", "err", rerr)
			}
		}
	}()
	opts.Links = restoreLinks(r.Links, made, log)
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

// newPidNamespace says whether the image's root was checkpointed as the
// init of a pid namespace the image does not record (crsub's checkpoint of
// a tree whose init was pid 1 of a namespace it shared with nothing else
// then), which CRIU restores in a new one. A pid namespace the image
// records is made again with it, its processes keeping their pids inside
// and out, as crsub restores every tree.
func newPidNamespace(inv *ckpt.Inventory) bool {
	if len(inv.Tree.Processes) == 0 || inv.Tree.Processes[0].NsPid != 1 {
		return false
	}
	for _, n := range inv.Namespaces {
		if n.Namespace.Kind == ckpt.NamespacePid {
			return false
		}
	}
	return true
}

// inheritedFile is an inherit_fd entry with what its fd is.
type inheritedFile struct {
	InheritFd
	// ns is the namespace ("net", "pid"…) the fd is a file of, if it is
	// one: runc passes the namespaces a container joins this way.
	ns string
}

// inheritedFiles looks at the fds inherit_fd names, which the runtime
// passed to crsub at those numbers.
func inheritedFiles(fds []InheritFd) ([]inheritedFile, error) {
	var out []inheritedFile
	for _, f := range fds {
		if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(f.Fd)); err != nil {
			return nil, &RefusedError{Field: "inherit_fd", Reason: fmt.Sprintf("key %q: crsub was given no fd %d", f.Key, f.Fd)}
		}
		// Not a namespace: ENOTTY, or EINVAL.
		kind, _ := sys.NamespaceKind(f.Fd)
		out = append(out, inheritedFile{InheritFd: f, ns: kind})
	}
	return out, nil
}

// inheritSubstitutes finds the files of the image that inherit_fd keys
// name, as CRIU names them ("pipe:[INODE]", "socket:[INODE]",
// "tty[RDEV:DEV]", a path without its leading /), and substitutes the
// inherited fd for the first fd of each file, root's and others' apart:
// the fds that shared the file follow it. It returns the keys that named
// no file of the image (a namespace is not a file: see supplyNamespaces).
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
		if !used[f.Key] && f.ns == "" {
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
// outside the tree and no inherited fd for it, where there is no runtime
// listening for notifications: CRIU makes a new terminal for it and sends
// its master to the runtime (orphan-pts-master) in a notification.
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
			return &RefusedError{Field: "orphan_pts_master", Reason: fmt.Sprintf("process %d fd %d is the terminal %s, whose master was outside the tree: its new terminal's master goes to the runtime in a notification, and this request asks for none (notify_scripts); or pass the terminal with inherit_fd %q", p.Process.Pid, fv.Fd, fv.File.Path, fileKey(fv))}
		}
	}
	return nil
}

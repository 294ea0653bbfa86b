package ns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A mount namespace holds a tree of mounts, recorded whole in its record
// (ckpt.MountNamespace, planned in mnt_plan.go) from the mountinfo of the
// first process in it, with the files of each tmpfs made in it in records
// of their own (mnt_files.go). A restart makes the namespace by
// CLONE_NEWNS with the first task in it, builds the tree there before any
// file of the tasks is opened (mnt_build.go), so that their paths resolve
// in it, and fills the tmpfs filesystems as their records come, before
// the task's memory and files do.
var mntKind = &Kind{
	Name:        ckpt.NamespaceMnt,
	CloneFlag:   unix.CLONE_NEWNS,
	Check:       checkMnt,
	Dump:        dumpMnt,
	DumpObjects: dumpMountFiles,
	Restore:     restoreMnt,
	Objects:     map[ckpt.Type]func(*RestoreContext, *Restored, *ckpt.Record) error{ckpt.TypeMountFiles: restoreMountFiles},
}

func checkMnt(pid int) error {
	_, err := readMountTree(pid)
	return err
}

func dumpMnt(_ *DumpContext, n *ckpt.Namespace, pid int) error {
	ms, err := readMountTree(pid)
	if err != nil {
		return err
	}
	n.Mnt = &ckpt.MountNamespace{Mounts: ms}
	return nil
}

// readMountTree reads the tree of mounts of process pid's mount
// namespace, refusing what cannot be made again.
func readMountTree(pid int) ([]ckpt.Mount, error) {
	inside, err := procfs.ReadMountinfo(pid)
	if err != nil {
		return nil, err
	}
	outside, err := procfs.ReadMountinfo(os.Getpid())
	if err != nil {
		return nil, err
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	ms, err := planMounts(inside, outside, func(host string, m *procfs.Mount) bool {
		if m == nil {
			var st unix.Stat_t
			return unix.Stat(host, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
		}
		return sameFile(host, root+m.MountPoint, m.ID)
	})
	if err != nil {
		return nil, err
	}
	pidns, err := Inode(os.Getpid(), ckpt.NamespacePid)
	if err != nil {
		return nil, err
	}
	procs := map[uint64]uint64{}
	for i := range ms {
		m := &ms[i]
		// A mount covered by another has the same kind of file at its
		// mount point, or none reachable: a directory, then.
		var st unix.Stat_t
		m.File = unix.Stat(root+m.Path, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR
		if typ := st.Mode & unix.S_IFMT; m.File && m.External == "" && typ != unix.S_IFREG {
			m.FileType, m.FileRdev = typ, st.Rdev
		}
		if m.FSType != "proc" || m.External != "" {
			continue
		}
		ns, ok := procs[m.Dev]
		if !ok {
			// Told by the mount of the whole of it: its pid 1.
			if top := filesMount(ms, m.Dev); top.Root == "/" {
				ns, err = procPidns(root+top.Path, top, pidns)
			} else {
				err = &MountError{Path: m.Path, FSType: m.FSType, Reason: "which pid namespace it shows cannot be told: no mount shows all of it"}
			}
			if err != nil {
				return nil, err
			}
			procs[m.Dev] = ns
		}
		m.PidNamespace = ns
	}
	return ms, nil
}

// sameFile says whether host, a path of crsub's, is the file inside is
// (a path through /proc/PID/root to the root of mount id); when another
// mount covers that one (or what is on the way to it), whether host
// exists.
func sameFile(host, inside string, id int) bool {
	var h, in unix.Stat_t
	if unix.Stat(host, &h) != nil {
		return false
	}
	fd, err := unix.Open(inside, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	if got, err := sys.MountID(fd); err != nil || got != id {
		return true
	}
	return unix.Fstat(fd, &in) == nil && in.Dev == h.Dev && in.Ino == h.Ino
}

// procPidns is the pid namespace a proc made in the namespace shows (at
// dir), as its pid 1 says: 0 for crsub's (own).
func procPidns(dir string, m *ckpt.Mount, own uint64) (uint64, error) {
	link, err := os.Readlink(dir + "/1/ns/pid")
	if err != nil {
		return 0, &MountError{Path: m.Path, FSType: m.FSType, Reason: fmt.Sprintf("which pid namespace it shows cannot be told: %v", err)}
	}
	var ino uint64
	if _, err := fmt.Sscanf(link, "pid:[%d]", &ino); err != nil {
		return 0, fmt.Errorf("%s/1/ns/pid: %q", dir, link)
	}
	if ino == own {
		return 0, nil
	}
	return ino, nil
}

// dumpMountFiles writes the files of each tmpfs made in the namespace,
// from a thread in it, through a copy of its mount that has none below it.
func dumpMountFiles(c *DumpContext, n *ckpt.Namespace, ref ckpt.Objref) error {
	if n.Mnt == nil {
		return nil
	}
	if c.mountFiles == nil {
		c.mountFiles = map[uint64]bool{}
	}
	var devs []uint64
	for _, m := range n.Mnt.Mounts {
		if m.External == "" && mountKinds[m.FSType].Files && !c.mountFiles[m.Dev] {
			c.mountFiles[m.Dev] = true
			devs = append(devs, m.Dev)
		}
	}
	if len(devs) == 0 {
		return nil
	}
	root, err := os.Open(fmt.Sprintf("/proc/%d/root", n.Pid))
	if err != nil {
		return err
	}
	defer root.Close()
	pidfd, err := sys.PidfdOpen(n.Pid)
	if err != nil {
		return err
	}
	defer pidfd.Close()
	for _, dev := range devs {
		m := filesMount(n.Mnt.Mounts, dev)
		err := sys.InMountNamespace(pidfd.Int(), unix.CLONE_NEWNS, nil, func() error {
			if !covered(n.Mnt.Mounts, m) {
				return dumpFilesOf(c, m, int(root.Fd()), m.ID, ref)
			}
			if err := uncoverInCopy(n.Mnt.Mounts, m); err != nil {
				return err
			}
			// The copy's mounts have ids of their own.
			own, err := os.Open("/")
			if err != nil {
				return err
			}
			defer own.Close()
			return dumpFilesOf(c, m, int(own.Fd()), 0, ref)
		})
		if errors.Is(err, unix.EINVAL) && c.Uncover != nil && covered(n.Mnt.Mounts, m) {
			// Locked in crsub's copy: uncovered by a helper of the tree.
			err = dumpUncovered(c, n.Pid, n.Mnt.Mounts, m, ref)
		}
		if err != nil {
			return fmt.Errorf("files of the %s at %s: %w", m.FSType, m.Path, err)
		}
	}
	return nil
}

// dumpUncovered writes the files of m, which other mounts of ms cover,
// read in a helper's copy of the namespace of process pid with what covers
// m unmounted.
func dumpUncovered(c *DumpContext, pid int, ms []ckpt.Mount, m *ckpt.Mount, ref ckpt.Objref) error {
	helper, release, err := c.Uncover(pid, covering(ms, m))
	if err != nil {
		return err
	}
	pidfd, err := sys.PidfdOpen(helper)
	if err == nil {
		// In its namespace: a detached copy is made of a mount of the
		// calling thread's namespace only.
		err = sys.InMountNamespace(pidfd.Int(), unix.CLONE_NEWNS, nil, func() error {
			own, err := os.Open("/")
			if err != nil {
				return err
			}
			defer own.Close()
			return dumpFilesOf(c, m, int(own.Fd()), 0, ref)
		})
		pidfd.Close()
	}
	return errors.Join(err, release())
}

// dumpFilesOf writes the MountFiles record of m's filesystem, read from a
// copy of m (root is the namespace's root, on a thread in it), which is
// mount id there (0: any mount of its filesystem).
func dumpFilesOf(c *DumpContext, m *ckpt.Mount, root, id int, ref ckpt.Objref) error {
	rel := relative(m.Path)
	if rel == "" {
		rel = "."
	}
	top, err := sys.PathOfMount(root, rel)
	if err != nil {
		return err
	}
	got, err := sys.MountID(top.Int())
	var st unix.Stat_t
	if err == nil {
		err = os.NewSyscallError("fstat", unix.Fstat(top.Int(), &st))
	}
	top.Close()
	if err != nil {
		return err
	}
	if (id != 0 && got != id) || st.Dev != m.Dev {
		return fmt.Errorf("another mount (%d) covers it", got)
	}
	// A copy shows what the mounts below it cover; an unbindable mount
	// cannot be copied, and shows its files where nothing covers them.
	clone, err := sys.CloneMount(root, rel)
	if errors.Is(err, unix.EINVAL) && m.Unbindable {
		clone, err = sys.PathOfMount(root, rel)
	}
	if err != nil {
		return err
	}
	defer clone.Close()
	prefix := relative(m.Root)
	var size countWriter
	files, err := writeFiles(&size, clone.Int(), prefix, false)
	if err != nil {
		return err
	}
	rec := ckpt.MountFiles{Dev: m.Dev, Size: int64(size), Files: files}
	return c.W.WriteWithPayload(ckpt.TypeMountFiles, 0, []ckpt.Objref{ref}, &rec, rec.Size, func(w io.Writer) error {
		got, err := writeFiles(w, clone.Int(), prefix, true)
		if err == nil && got != files {
			err = fmt.Errorf("%d files, then %d: it changed while frozen", files, got)
		}
		return err
	})
}

// countWriter counts what is written to it.
type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) {
	*c += countWriter(len(b))
	return len(b), nil
}

// restoreMnt builds the namespace's tree, from a thread that joined it and
// the namespaces of the task it was made with that the filesystems made
// anew show (net for sysfs, ipc for mqueue, cgroup for cgroup
// hierarchies; proc is given its pid namespace). A proc showing a pid
// namespace that is not made yet (its init is a child of this task), and
// what is below it, are mounted once it is (mountProcs).
func restoreMnt(c *RestoreContext, n *Restored) error {
	if n.Record.Mnt == nil || len(n.Record.Mnt.Mounts) == 0 {
		return fmt.Errorf("its record has no mounts")
	}
	paths, err := externalPaths(n.Record.Mnt.Mounts, c.Root, c.MountMap)
	if err != nil {
		return err
	}
	if err := checkRoot(n.Record.Mnt.Mounts, c.Root); err != nil {
		return err
	}
	host := n.Record.Pid
	if c.Files != nil && c.Files.HostPid != nil {
		host = c.Files.HostPid(host)
	}
	t := &mountTree{mounts: n.Record.Mnt.Mounts, paths: paths, made: map[int]*sys.FD{}, sources: map[int]*sys.FD{}, removals: map[int]removal{}, ptys: map[int]*os.File{}, moved: map[uint64]uint64{},
		filesystems: c.madeFilesystems(), built: map[int]bool{}, host: host}
	n.mounts = t
	if err := t.run(c); err != nil {
		return err
	}
	if t.pending() {
		c.deferred = append(c.deferred, t)
	}
	return nil
}

// run builds what it can of tree t, from a thread in its namespace.
func (t *mountTree) run(c *RestoreContext) error {
	pidfd, err := sys.PidfdOpen(t.host)
	if err != nil {
		return err
	}
	defer pidfd.Close()
	own, err := os.Open("/proc/self/ns/pid")
	if err != nil {
		return err
	}
	defer own.Close()
	pidns := func(inode uint64) (int, bool) {
		if inode == 0 {
			return int(own.Fd()), true // crsub's
		}
		if f := c.pidNamespaces[inode]; f != nil {
			return int(f.Fd()), true
		}
		return -1, false
	}
	err = sys.InMountNamespace(pidfd.Int(), unix.CLONE_NEWNS|unix.CLONE_NEWNET|unix.CLONE_NEWIPC|unix.CLONE_NEWCGROUP, t.takeExternal, func() error {
		return t.build(pidns, c.peerGroups())
	})
	return err
}

// mountProcs, once pid namespace n is made, mounts the procs showing it
// that mount namespaces made before it wait for, with what is below them.
func mountProcs(c *RestoreContext, n *Restored) error {
	if c.pidNamespaces == nil {
		c.pidNamespaces = map[uint64]*os.File{}
	}
	c.pidNamespaces[n.Record.Inode] = n.File()
	var still []*mountTree
	for _, t := range c.deferred {
		if err := t.run(c); err != nil {
			return err
		}
		if t.pending() {
			still = append(still, t)
		}
	}
	c.deferred = still
	return nil
}

// restoreMountFiles writes the files of a tmpfs made anew, through the
// mount of the whole of it kept for them, and makes it read-only if it
// was.
func restoreMountFiles(_ *RestoreContext, n *Restored, rec *ckpt.Record) error {
	var mf ckpt.MountFiles
	if err := rec.Decode(&mf); err != nil {
		return err
	}
	t := n.mounts
	if t == nil {
		return errNoMountTree
	}
	whole := t.whole[mf.Dev]
	if whole == nil {
		return fmt.Errorf("files of filesystem %d:%d: no filesystem of the namespace made anew is that one", unix.Major(mf.Dev), unix.Minor(mf.Dev))
	}
	what := describeDev(t.mounts, mf.Dev)
	got, err := readFiles(rec.Payload(), mf.Size, whole.Int())
	if err != nil {
		return fmt.Errorf("files of %s: %w", what, err)
	}
	if got != mf.Files {
		return fmt.Errorf("files of %s: %d in the archive, the record says %d", what, got, mf.Files)
	}
	if t.readOnly[mf.Dev] {
		if err := sys.Reconfigure(whole.Int(), "ro"); err != nil {
			return fmt.Errorf("%s read-only again: %w", what, err)
		}
	}
	return nil
}

// describeDev names filesystem dev by its mounts' mount points.
func describeDev(ms []ckpt.Mount, dev uint64) string {
	var at []string
	fstype := ""
	for _, m := range ms {
		if m.Dev == dev {
			at = append(at, m.Path)
			fstype = m.FSType
		}
	}
	return fmt.Sprintf("the %s at %s", fstype, strings.Join(at, ", "))
}

// NewDevice is, for a filesystem made anew by a restart in namespace n
// (by its device number at checkpoint), its device number now: the files
// on it are the image's, with new inode numbers.
func (n *Restored) NewDevice(dev uint64) (uint64, bool) {
	if n.mounts == nil {
		return 0, false
	}
	d, ok := n.mounts.devs[dev]
	return d, ok
}

// PtyMaster is, for a mount namespace made again, the master of pty n
// made for a mount of its slave; nil if none was. The caller takes it.
func (n *Restored) PtyMaster(index int) *os.File {
	if n.mounts == nil {
		return nil
	}
	f := n.mounts.ptys[index]
	delete(n.mounts.ptys, index)
	return f
}

// RootPath is how crsub reaches the root of a mount namespace made
// again: through the root of the task it was made with.
func (n *Restored) RootPath() (string, bool) {
	if n.mounts == nil {
		return "", false
	}
	return fmt.Sprintf("/proc/%d/root", n.mounts.host), true
}

// MovedDevice is, for a filesystem from outside namespace n mounted again
// since the checkpoint (by its device number then), its device number now:
// its files and their inodes are the same.
func (n *Restored) MovedDevice(dev uint64) (uint64, bool) {
	if n.mounts == nil {
		return 0, false
	}
	d, ok := n.mounts.moved[dev]
	return d, ok
}

// ProcPidNamespace says whether filesystem dev (its device number at
// checkpoint) is a proc the restart made anew in namespace n, and gives
// the pid namespace that proc shows, made again by now: nil for crsub's.
// Its /proc/PID directories are then of the pids there, which the
// restart gave the tree's processes again.
func (n *Restored) ProcPidNamespace(c *RestoreContext, dev uint64) (pidns *os.File, ok bool) {
	if n.mounts == nil {
		return nil, false
	}
	for _, m := range n.mounts.mounts {
		if m.Dev != dev || m.FSType != "proc" || m.External != "" {
			continue
		}
		if m.PidNamespace == 0 {
			return nil, true
		}
		f := c.pidNamespaces[m.PidNamespace]
		return f, f != nil
	}
	return nil, false
}

package ns

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A mount namespace is made again in the namespace the first task in it
// was cloned with, a copy of crsub's: from a thread of crsub that joined
// it (sys.InMountNamespace), each mount is made detached (a copy of an
// external path taken in crsub's namespace first, or of the part it shows
// of a filesystem made anew), given its flags, and attached where it was,
// private; the root first, which pivot_root makes the root of every task
// in the namespace, the copy of crsub's tree going with it. Once the tree
// is whole, the mounts are given their propagation (mnt_share.go).
// Nothing is made outside the namespace: its mounts are private to it
// until then, the mount points a tmpfs needs are made in it, and a failed
// restart leaves the mounts to die with the namespace. The files of a
// tmpfs come later, in their own records (mnt_files.go), through a mount
// of the whole of it kept until then.

// mountTree is a mount namespace being made again, and then filled.
type mountTree struct {
	mounts []ckpt.Mount
	// paths are the external mounts' paths at restart, by mount id.
	paths map[int]string
	// made holds a mount fd of each mount made, by id; sources, by id, a
	// copy of an external mount's path with the propagation the mount
	// there has, which the mount's propagation is taken from when its peer
	// group or master had mounts outside the namespace.
	made    map[int]*sys.FD
	sources map[int]*sys.FD
	// removals are the roots of mounts that were removed, made again, to
	// remove once they are attached, by id.
	removals map[int]removal
	// ptys are the masters of the pty pairs made in a devpts made anew
	// for a mount of one of their slaves (/dev/console, a bind of
	// /dev/pts/N), by number: the restart of that pty takes its master.
	ptys map[int]*os.File
	// filesystems are those made anew, shared by the mount namespaces of
	// the restart: a filesystem mounted in more than one is one.
	*filesystems
	// moved maps the Dev of an external mount's filesystem to its device
	// number now, where that differs: the same files, mounted again
	// since (a container's overlay, which its runtime mounts anew).
	moved map[uint64]uint64
	// built are the mounts made and attached, by id; host is the task
	// the namespace was made with, which a thread joins to build in it.
	built map[int]bool
	host  int
}

// filesystems are the filesystems a restart made anew, by their Dev at
// checkpoint: a mount of the whole of each, which the mounts of it are
// copies of parts of and a tmpfs's files are written through, kept until
// the restart ends; its new device number; whether it is to be made
// read-only once its files are in.
type filesystems struct {
	whole    map[uint64]*sys.FD
	devs     map[uint64]uint64
	readOnly map[uint64]bool
}

// close lets go of the mounts of the whole filesystems.
func (f *filesystems) close() {
	for k, fd := range f.whole {
		fd.Close()
		delete(f.whole, k)
	}
}

// externalPaths works out where each external mount of the image is at
// restart: root replaces the root's path, mountMap (old path → new) the
// others'. A root or mapping that does not apply to the image is an
// error.
func externalPaths(ms []ckpt.Mount, root string, mountMap map[string]string) (map[int]string, error) {
	paths := map[int]string{}
	used := map[string]bool{}
	for i, m := range ms {
		if m.External == "" {
			if i == 0 && root != "" {
				return nil, fmt.Errorf("a root is given (%s), but the image's root is a %s made in its mount namespace, not an external one", root, m.FSType)
			}
			continue
		}
		p := m.External
		if i == 0 && root != "" {
			p = root
		} else if to, ok := mountMap[m.External]; ok {
			p = to
			used[m.External] = true
		} else {
			// Below a moved one: moved with it.
			for from, to := range mountMap {
				if strings.HasPrefix(m.External, from+"/") {
					p = path.Join(to, strings.TrimPrefix(m.External, from))
					used[from] = true
				}
			}
		}
		paths[m.ID] = p
	}
	for from := range mountMap {
		if !used[from] {
			return nil, fmt.Errorf("a mount map is given for %s, but no external mount of the image is there", from)
		}
	}
	return paths, nil
}

// close lets go of every mount fd of the tree still held.
func (t *mountTree) close() {
	for _, m := range []map[int]*sys.FD{t.made, t.sources} {
		for k, fd := range m {
			fd.Close()
			delete(m, k)
		}
	}
	for n, f := range t.ptys {
		f.Close()
		delete(t.ptys, n)
	}
	for id := range t.removals {
		t.remove(id) // a failed restart leaves none made behind
	}
}

// build makes, from a thread that joined the namespace, once the external
// mounts are taken (takeExternal), the mounts of the tree it can: all but
// those below a proc showing a pid namespace not made yet (pidns says
// which are, giving an fd on them), which a later build makes. The build
// that makes the last gives them all their propagation, the mounts of
// peer groups made in other namespaces in groups.
func (t *mountTree) build(pidns func(inode uint64) (int, bool), groups peerGroups) error {
	if !t.built[t.mounts[0].ID] {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making the copy of crsub's mounts private: %w", os.NewSyscallError("mount", err))
		}
		if err := t.makeRevealing(pidns); err != nil {
			return err
		}
	}
	for _, i := range attachOrder(t.mounts) {
		m := &t.mounts[i]
		if t.built[m.ID] || (i > 0 && !t.built[m.Parent]) {
			continue
		}
		ns := -1
		if m.External == "" && m.FSType == "proc" {
			var ok bool
			if ns, ok = pidns(m.PidNamespace); !ok {
				continue // with what is below it
			}
		}
		fd, err := t.make(m, ns)
		if err != nil {
			return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
		}
		t.made[m.ID] = fd
		if i == 0 {
			if err := t.becomeRoot(fd); err != nil {
				return err
			}
		} else if err := t.attach(m, fd); err != nil {
			return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
		}
		if err := t.remove(m.ID); err != nil {
			return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
		}
		t.built[m.ID] = true
	}
	if t.pending() {
		return nil
	}
	return t.share(groups)
}

// makeRevealing makes the procs and sysfs of the tree (those it can: a
// proc's pid namespace must be made) before the root replaces the copy of
// crsub's mounts. In a mount namespace a user namespace below crsub's
// owns, the kernel makes one only while one of its kind is visible there
// whole (fsmount's mount_too_revealing), as crsub's /proc and /sys are
// until then; the mounts are attached later, in their turn.
func (t *mountTree) makeRevealing(pidns func(inode uint64) (int, bool)) error {
	for i := 1; i < len(t.mounts); i++ {
		m := &t.mounts[i]
		if m.External != "" || (m.FSType != "proc" && m.FSType != "sysfs") {
			continue
		}
		ns := -1
		if m.FSType == "proc" {
			var ok bool
			if ns, ok = pidns(m.PidNamespace); !ok {
				continue
			}
		}
		if _, err := t.wholeOf(m, ns); err != nil {
			return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
		}
	}
	return nil
}

// attachOrder is the order mounts ms (the image's, each after its
// parent) are attached in: the image's, but that a mount whose mount
// point another mount on the same parent covers comes before that one
// (it was mounted first, or propagated there later), as its mount point
// is reached through its parent's filesystem alone.
func attachOrder(ms []ckpt.Mount) []int {
	placed := make([]bool, len(ms))
	ids := map[int]bool{}
	var out []int
	for len(out) < len(ms) {
		n := len(out)
		for i := range ms {
			if placed[i] || (i > 0 && !ids[ms[i].Parent]) || coversUnplaced(ms, placed, i) {
				continue
			}
			placed[i] = true
			ids[ms[i].ID] = true
			out = append(out, i)
			break
		}
		if len(out) == n { // not a tree: the rest as they are
			for i := range ms {
				if !placed[i] {
					placed[i] = true
					out = append(out, i)
				}
			}
		}
	}
	return out
}

// coversUnplaced says whether mount i covers the mount point of a mount
// not placed yet on the same parent.
func coversUnplaced(ms []ckpt.Mount, placed []bool, i int) bool {
	for j := range ms {
		if !placed[j] && j != i && i > 0 && ms[j].Parent == ms[i].Parent && ms[j].Path != ms[i].Path && within(ms[j].Path, ms[i].Path) {
			return true
		}
	}
	return false
}

// pending says whether some mounts are still to be made.
func (t *mountTree) pending() bool {
	return len(t.built) < len(t.mounts)
}

// takeExternal takes a detached copy of each external mount's path, in
// crsub's namespace, private; and, for one with a peer group or a master,
// another with the propagation of the mount it is a copy of (a peer of
// it, a slave of its master).
// A removed root is made again for the copy, and removed once the mount
// is attached.
func (t *mountTree) takeExternal() error {
	for i := range t.mounts {
		m := &t.mounts[i]
		p, ok := t.paths[m.ID]
		if !ok || t.built[m.ID] || t.made[m.ID] != nil {
			continue
		}
		if m.Deleted {
			if err := makeRemoved(unix.AT_FDCWD, p, m.File); err != nil {
				return fmt.Errorf("external mount for %s: %w", m.Path, err)
			}
		}
		fd, err := sys.CloneMount(unix.AT_FDCWD, p)
		if err == nil && (m.Shared != 0 || m.Master != 0) && t.sources[m.ID] == nil {
			t.sources[m.ID], err = sys.CloneMount(unix.AT_FDCWD, p)
		}
		if m.Deleted {
			err = errors.Join(err, t.toRemove(m, unix.AT_FDCWD, p))
		}
		if err != nil {
			fd.Close()
			return fmt.Errorf("external mount for %s: %w", m.Path, err)
		}
		t.made[m.ID] = fd
		var st unix.Stat_t
		if err := unix.Fstat(fd.Int(), &st); err != nil {
			return fmt.Errorf("external mount for %s: %w", m.Path, os.NewSyscallError("fstat", err))
		}
		if st.Dev != m.Dev {
			t.moved[m.Dev] = st.Dev
		}
		// A copy of a shared mount is its peer: nothing made in the
		// namespace may propagate back out while the tree is built.
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_PRIVATE); err != nil {
			return fmt.Errorf("external mount for %s (%s): %w", m.Path, p, err)
		}
	}
	return nil
}

// make makes mount m, detached, with its flags.
func (t *mountTree) make(m *ckpt.Mount, pidns int) (*sys.FD, error) {
	var fd *sys.FD
	if err := t.makeRoot(m); err != nil {
		return nil, err
	}
	if m.External != "" {
		fd = t.made[m.ID]
		delete(t.made, m.ID)
	} else {
		whole, err := t.wholeOf(m, pidns)
		if err != nil {
			return nil, err
		}
		if m.FSType == "devpts" {
			if err := t.makePty(whole.Int(), m.Root); err != nil {
				return nil, err
			}
		}
		fd, err = sys.CloneMount(whole.Int(), relative(m.Root))
		if err == nil && m.Deleted && m.Root != "/" {
			err = t.toRemove(m, whole.Int(), relative(m.Root))
		}
		if err != nil {
			fd.Close()
			return nil, err
		}
	}
	set, clear := mountAttr(m.Flags)
	if err := sys.SetMountAttr(fd.Int(), set, clear, 0); err != nil {
		fd.Close()
		return nil, fmt.Errorf("flags %v: %w", m.Flags, err)
	}
	return fd, nil
}

// makeRoot makes what m shows of its filesystem, made anew with its files
// to come, if it is not there yet: its files come after the tree is
// built.
func (t *mountTree) makeRoot(m *ckpt.Mount) error {
	if m.External != "" || !mountKinds[m.FSType].Files || m.Root == "/" {
		return nil
	}
	whole := t.whole[m.Dev]
	if whole == nil {
		return nil // made with it, whole
	}
	return makePath(whole.Int(), relative(m.Root), rootType(m), m.FileRdev)
}

// rootType is the type bits of the file mount m shows.
func rootType(m *ckpt.Mount) uint32 {
	switch {
	case !m.File:
		return unix.S_IFDIR
	case m.FileType != 0:
		return m.FileType
	}
	return unix.S_IFREG
}

// makePath makes p under dirfd, a directory, an empty file or a device
// node or FIFO (typ, with rdev), and the directories above it.
func makePath(dirfd int, p string, typ uint32, rdev uint64) error {
	if dir := path.Dir(p); dir != "." {
		if err := mkdirAllBeneath(dirfd, dir); err != nil {
			return err
		}
	}
	var err error
	switch typ {
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err = unix.Mknodat(dirfd, p, typ|0o600, int(rdev)); err == unix.EEXIST && isNode(dirfd, p, typ, rdev) {
			err = nil // the root of another mount of it
		}
	case unix.S_IFREG:
		var fd int
		fd, err = unix.Openat(dirfd, p, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
	default:
		if err = unix.Mkdirat(dirfd, p, 0o755); err == unix.EEXIST {
			err = nil
		}
	}
	if err != nil {
		return &os.PathError{Op: "make", Path: p, Err: err}
	}
	return nil
}

// makeRemoved makes p under dirfd, the root of a mount that was removed,
// to mount it before it is removed again: a directory, or an empty file.
// Something else there now is not taken for it.
func makeRemoved(dirfd int, p string, file bool) error {
	var err error
	if file {
		var fd int
		if fd, err = unix.Openat(dirfd, p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err == nil {
			unix.Close(fd)
		}
	} else {
		err = unix.Mkdirat(dirfd, p, 0o700)
	}
	if err != nil {
		return &os.PathError{Op: "making the removed root", Path: p, Err: err}
	}
	return nil
}

// removal is the root of a mount that was removed, made again, to
// remove once the mount is attached (a mount of what is removed cannot
// be).
type removal struct {
	dir  *sys.FD
	name string
	file bool
}

// toRemove has the root of m, p under dirfd, removed once m is
// attached.
func (t *mountTree) toRemove(m *ckpt.Mount, dirfd int, p string) error {
	fd, err := unix.Openat(dirfd, path.Dir(p), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path.Dir(p), Err: err}
	}
	t.removals[m.ID] = removal{dir: sys.NewFD(fd), name: path.Base(p), file: m.File}
	return nil
}

// remove removes the root of mount id, attached, if it was removed.
func (t *mountTree) remove(id int) error {
	r, ok := t.removals[id]
	if !ok {
		return nil
	}
	delete(t.removals, id)
	defer r.dir.Close()
	flags := unix.AT_REMOVEDIR
	if r.file {
		flags = 0
	}
	if err := unix.Unlinkat(r.dir.Int(), r.name, flags); err != nil {
		return &os.PathError{Op: "removing its removed root again", Path: r.name, Err: err}
	}
	return nil
}

// makePty makes, for a mount of root, a pty slave of devpts mount
// devpts, the pty pair it is the slave of, if it is not there: the pty
// of that number (sys.OpenPtyIndex), whose master is kept for the
// restart of the pty.
func (t *mountTree) makePty(devpts int, root string) error {
	n, err := strconv.Atoi(strings.TrimPrefix(root, "/"))
	if err != nil || n < 0 || t.ptys[n] != nil {
		return nil // the whole of it, or its ptmx
	}
	var st unix.Stat_t
	if unix.Fstatat(devpts, strconv.Itoa(n), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return nil
	}
	f, err := sys.OpenPtyIndex(devpts, "ptmx", n)
	if err != nil {
		return err
	}
	t.ptys[n] = f
	return nil
}

// wholeOf is the mount of the whole of m's filesystem, made anew the first
// time: read-write until its files are in.
func (t *mountTree) wholeOf(m *ckpt.Mount, pidns int) (*sys.FD, error) {
	if fd := t.whole[m.Dev]; fd != nil {
		return fd, nil
	}
	settings, readOnly := fsSettings(m.Options)
	if mountKinds[m.FSType].In == ckpt.NamespacePid {
		settings = append(settings, sys.FSConfig{Key: "pidns", FD: pidns})
	}
	if m.Source != "" {
		settings = append([]sys.FSConfig{{Key: "source", Value: m.Source}}, settings...)
	}
	fd, err := sys.NewMount(m.FSType, settings, 0)
	if err != nil {
		return nil, err
	}
	if mountKinds[m.FSType].Files && m.Root != "/" {
		if err := makePath(fd.Int(), relative(m.Root), rootType(m), m.FileRdev); err != nil {
			fd.Close()
			return nil, err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd.Int(), &st); err != nil {
		fd.Close()
		return nil, os.NewSyscallError("fstat", err)
	}
	t.whole[m.Dev] = fd
	t.devs[m.Dev] = st.Dev
	if readOnly {
		if !mountKinds[m.FSType].Files {
			if err := sys.Reconfigure(fd.Int(), "ro"); err != nil {
				return nil, err
			}
		} else {
			t.readOnly[m.Dev] = true
		}
	}
	return fd, nil
}

// fsSettings turns mountinfo's super options into fsconfig settings: "k=v"
// a string, "k" a flag; rw and ro are the filesystem's state, said apart.
func fsSettings(options string) (settings []sys.FSConfig, readOnly bool) {
	for _, o := range strings.Split(options, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "", "rw", "seclabel":
		case "ro":
			readOnly = true
		default:
			settings = append(settings, sys.FSConfig{Key: k, Value: v})
		}
	}
	return settings, readOnly
}

// relative is p without its leading "/": "" for the root.
func relative(p string) string { return strings.TrimLeft(p, "/") }

// becomeRoot attaches the root mount onto the namespace's root and makes
// it the root of every task there (those of the namespace, and this
// thread), the copy of crsub's mounts leaving.
func (t *mountTree) becomeRoot(root *sys.FD) error {
	if err := sys.AttachMountAt(root.Int(), "/"); err != nil {
		return fmt.Errorf("the root: %w", err)
	}
	if err := unix.Fchdir(root.Int()); err != nil {
		return os.NewSyscallError("fchdir", err)
	}
	if err := sys.PivotRoot(); err != nil {
		return fmt.Errorf("the root: %w", err)
	}
	return os.NewSyscallError("chdir", unix.Chdir("/"))
}

// attach attaches m onto its parent, at its mount point.
func (t *mountTree) attach(m *ckpt.Mount, fd *sys.FD) error {
	parent, pm := t.made[m.Parent], t.mount(m.Parent)
	if parent == nil || pm == nil {
		return fmt.Errorf("its parent mount %d is not made", m.Parent)
	}
	rel := "."
	if m.Path != pm.Path {
		rel = relative(strings.TrimPrefix(m.Path, strings.TrimSuffix(pm.Path, "/")))
	}
	if err := t.mountPoint(pm, rel, m); err != nil {
		return err
	}
	if rel == "." {
		// Stacked on its parent's root, which may be a file (a file bind
		// mount bound over again): no path to resolve beneath it.
		return sys.AttachMount(fd.Int(), parent.Int())
	}
	target, err := sys.OpenBeneath(parent.Int(), rel)
	if err != nil {
		return fmt.Errorf("its mount point: %w", err)
	}
	defer target.Close()
	return sys.AttachMount(fd.Int(), target.Int())
}

// mountPoint makes the mount point of m, rel in its parent pm, where pm's
// filesystem is one made anew: a directory, or an empty file for a mount
// of a file. It must exist in any other.
func (t *mountTree) mountPoint(pm *ckpt.Mount, rel string, m *ckpt.Mount) error {
	whole := t.whole[pm.Dev]
	if whole == nil || pm.External != "" || !mountKinds[pm.FSType].Files || rel == "." {
		return nil
	}
	// What the mount point was is covered: an empty file will do.
	typ := uint32(unix.S_IFDIR)
	if m.File {
		typ = unix.S_IFREG
	}
	if err := makePath(whole.Int(), path.Join(relative(pm.Root), rel), typ, 0); err != nil {
		return fmt.Errorf("its mount point: %w", err)
	}
	return nil
}

// mkdirAllBeneath makes directory p and those above it under dirfd,
// following no symbolic link and crossing no mount on the way.
func mkdirAllBeneath(dirfd int, p string) error {
	fd, err := sys.NewFD(dirfd).Dup()
	if err != nil {
		return err
	}
	defer func() { fd.Close() }()
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			return fmt.Errorf("%s: a path going up", p)
		}
		if err := unix.Mkdirat(fd.Int(), c, 0o755); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdirat", Path: p, Err: err}
		}
		next, err := sys.OpenBeneath(fd.Int(), c)
		if err != nil {
			return err
		}
		fd.Close()
		fd = next
	}
	return nil
}

// hasGroup says whether peer group g has a mount in the namespace.
func (t *mountTree) hasGroup(g int) bool {
	for _, m := range t.mounts {
		if m.Shared == g {
			return true
		}
	}
	return false
}

// mount is the image's mount id.
func (t *mountTree) mount(id int) *ckpt.Mount {
	for i := range t.mounts {
		if t.mounts[i].ID == id {
			return &t.mounts[i]
		}
	}
	return nil
}

// mountAttrs are the MOUNT_ATTR_* flags of the per-mount flags, but
// atime's.
var mountAttrs = map[string]uint64{
	"ro": unix.MOUNT_ATTR_RDONLY, "nosuid": unix.MOUNT_ATTR_NOSUID, "nodev": unix.MOUNT_ATTR_NODEV,
	"noexec": unix.MOUNT_ATTR_NOEXEC, "nodiratime": unix.MOUNT_ATTR_NODIRATIME, "nosymfollow": unix.MOUNT_ATTR_NOSYMFOLLOW,
}

// mountAttr is what mount_setattr sets and clears for flags: every flag
// the image has not is cleared, and atime is relatime, noatime or (with
// neither) strictatime.
func mountAttr(flags []string) (set, clear uint64) {
	for name, a := range mountAttrs {
		clear |= a
		for _, f := range flags {
			if f == name {
				set |= a
			}
		}
	}
	clear |= unix.MOUNT_ATTR__ATIME
	set |= unix.MOUNT_ATTR_STRICTATIME
	for _, f := range flags {
		switch f {
		case "relatime":
			set = set&^unix.MOUNT_ATTR__ATIME | unix.MOUNT_ATTR_RELATIME
		case "noatime":
			set = set&^unix.MOUNT_ATTR__ATIME | unix.MOUNT_ATTR_NOATIME
		}
	}
	clear &^= set &^ unix.MOUNT_ATTR__ATIME
	return set, clear
}

// errNoMountTree is a MountFiles record for a namespace not made again
// here.
var errNoMountTree = errors.New("no mount tree made for it")

package ns

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A mount namespace is made again in the namespace the first task in it
// was cloned with, a copy of crsub's: from a thread of crsub that joined
// it (sys.InMountNamespace), each mount is made detached (a copy of an external path
// taken in crsub's namespace first, a filesystem made anew, or a copy of
// a mount made before, for a bind mount or a peer), given its flags and
// propagation, and attached where it was; the root first, which
// pivot_root makes the root of every task in the namespace, the copy of
// crsub's tree going with it. Nothing is made outside the namespace: its
// mounts are private to it from the start, the mount points a tmpfs needs
// are made in it, and a failed restart leaves the mounts to die with the
// namespace. The files of a tmpfs come later, in their own records
// (mnt_files.go), through a mount of the whole of it kept until then.

// mountTree is a mount namespace being made again, and then filled.
type mountTree struct {
	mounts []ckpt.Mount
	// paths are the external mounts' paths at restart, by mount id.
	paths map[int]string
	// made holds a mount fd of each mount made, by id; origins, by peer
	// group, the first mount made of each, which the others are copies
	// of.
	made    map[int]*sys.FD
	origins map[int]*sys.FD
	// whole holds, by Dev at checkpoint, a mount of the whole of each
	// filesystem made anew: the others are copies of parts of it, and a
	// tmpfs's files are written through it (kept until they are).
	whole map[uint64]*sys.FD
	// devs maps the Dev of each filesystem made anew to its new one.
	devs map[uint64]uint64
	// moved maps the Dev of an external mount's filesystem to its device
	// number now, where that differs: the same files, mounted again
	// since (a container's overlay, which its runtime mounts anew).
	moved map[uint64]uint64
	// readOnly are the filesystems made anew that were read-only: they
	// are made so once their files are in.
	readOnly map[uint64]bool
	// built are the mounts made and attached, by id; host is the task
	// the namespace was made with, which a thread joins to build in it.
	built map[int]bool
	host  int
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

// close lets go of every mount fd still held.
func (t *mountTree) close() {
	for _, m := range []map[int]*sys.FD{t.made, t.origins} {
		for k, fd := range m {
			fd.Close()
			delete(m, k)
		}
	}
	for k, fd := range t.whole {
		fd.Close()
		delete(t.whole, k)
	}
}

// build makes, from a thread that joined the namespace, once the external
// mounts are taken (takeExternal), the mounts of the tree it can: all but
// those below a proc showing a pid namespace not made yet (pidns says
// which are, giving an fd on them), which a later build makes.
func (t *mountTree) build(pidns func(inode uint64) (int, bool)) error {
	if !t.built[t.mounts[0].ID] {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making the copy of crsub's mounts private: %w", os.NewSyscallError("mount", err))
		}
	}
	var unbindable []*sys.FD
	for i := range t.mounts {
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
		fd = t.made[m.ID] // a copy propagated there replaces it
		if err := t.propagate(m, fd); err != nil {
			return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
		}
		t.built[m.ID] = true
		if m.Unbindable {
			unbindable = append(unbindable, fd)
		}
	}
	// Last: an unbindable mount cannot be copied for its peers.
	for _, fd := range unbindable {
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_UNBINDABLE); err != nil {
			return err
		}
	}
	return nil
}

// pending says whether some mounts are still to be made.
func (t *mountTree) pending() bool {
	return len(t.built) < len(t.mounts)
}

// takeExternal takes a detached copy of each external mount's path, in
// crsub's namespace.
func (t *mountTree) takeExternal() error {
	for _, m := range t.mounts {
		p, ok := t.paths[m.ID]
		if !ok || t.built[m.ID] || t.made[m.ID] != nil {
			continue
		}
		fd, err := sys.CloneMount(unix.AT_FDCWD, p)
		if err != nil {
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
		// namespace may propagate back out. A slave of it is as far as
		// it goes, for a mount that was a slave of a group outside.
		prop := uint64(unix.MS_PRIVATE)
		if m.Master != 0 && !t.hasGroup(m.Master) {
			prop = unix.MS_SLAVE
		}
		if err := sys.SetMountAttr(fd.Int(), 0, 0, prop); err != nil {
			return fmt.Errorf("external mount for %s (%s): %w", m.Path, p, err)
		}
	}
	return nil
}

// make makes mount m, detached, with its flags.
func (t *mountTree) make(m *ckpt.Mount, pidns int) (*sys.FD, error) {
	var fd *sys.FD
	var err error
	if m.External != "" && (t.origins[m.Master] != nil || t.origins[m.Shared] != nil) {
		// A copy of a peer instead.
		t.made[m.ID].Close()
		delete(t.made, m.ID)
	}
	if err := t.makeRoot(m); err != nil {
		return nil, err
	}
	switch {
	case m.Master != 0 && t.origins[m.Master] != nil:
		fd, err = t.copyOf(t.origins[m.Master], m)
	case m.Shared != 0 && t.origins[m.Shared] != nil:
		fd, err = t.copyOf(t.origins[m.Shared], m)
	case m.External != "":
		fd = t.made[m.ID]
		delete(t.made, m.ID)
	default:
		var whole *sys.FD
		if whole, err = t.wholeOf(m, pidns); err == nil {
			fd, err = sys.CloneMount(whole.Int(), relative(m.Root))
		}
	}
	if err != nil {
		return nil, err
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

// copyOf copies the part of origin, a mount of m's filesystem, that m
// shows: m joins origin's peer group.
func (t *mountTree) copyOf(origin *sys.FD, m *ckpt.Mount) (*sys.FD, error) {
	var o *ckpt.Mount
	for i := range t.mounts {
		if t.origins[t.mounts[i].Shared] == origin {
			o = &t.mounts[i]
			break
		}
	}
	if o == nil || !within(m.Root, o.Root) {
		return nil, fmt.Errorf("its root %s is not in the peer it is copied from", m.Root)
	}
	return sys.CloneMount(origin.Int(), relative(strings.TrimPrefix(m.Root, o.Root)))
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

// attach attaches m onto its parent, at its mount point, unless a copy
// of it came there already: propagated from a peer of the parent, as it
// was when it was first mounted.
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
	if t.propagated(parent, rel, m, fd) {
		return nil
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

// propagated says whether a copy of m is on its mount point already,
// propagated there from a peer of its parent, as it was when m was first
// mounted: the mount there shows what fd (m, made) shows. That copy then
// takes m's place.
func (t *mountTree) propagated(parent *sys.FD, rel string, m *ckpt.Mount, fd *sys.FD) bool {
	top, err := sys.PathOfMount(parent.Int(), rel)
	if err != nil {
		return false
	}
	pid, err1 := sys.MountID(parent.Int())
	tid, err2 := sys.MountID(top.Int())
	var there, made unix.Stat_t
	if err1 != nil || err2 != nil || pid == tid || unix.Fstat(top.Int(), &there) != nil || unix.Fstat(fd.Int(), &made) != nil ||
		there.Dev != made.Dev || there.Ino != made.Ino {
		top.Close()
		return false
	}
	t.made[m.ID].Close()
	t.made[m.ID] = top
	return true
}

// propagate gives m its propagation: a slave of its master group, then
// shared in its own group (the first of a group is its origin), or
// private.
func (t *mountTree) propagate(m *ckpt.Mount, fd *sys.FD) error {
	if m.Master != 0 {
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_SLAVE); err != nil {
			return fmt.Errorf("a slave of peer group %d: %w", m.Master, err)
		}
	}
	switch {
	case m.Shared != 0 && t.origins[m.Shared] == nil:
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_SHARED); err != nil {
			return fmt.Errorf("shared: %w", err)
		}
		dup, err := fd.Dup()
		if err != nil {
			return err
		}
		t.origins[m.Shared] = dup
	case m.Shared == 0 && m.Master == 0:
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_PRIVATE); err != nil {
			return fmt.Errorf("private: %w", err)
		}
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

package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A file removed from the name it was opened by while another link stays
// is opened again by its handle. That handle is stale when the restart
// makes its filesystem anew (a tmpfs of a mount namespace of the image,
// refilled from its contents): then another name, found at checkpoint by
// walking the mounts of its filesystem, opens it, where CRIU links a
// link-remap file at checkpoint.

// maxLinkedWalk bounds the entries walked looking for another name.
const maxLinkedWalk = 100000

var errWalkDone = errors.New("walk done")

// linkedName records in f another name of the file fd is open on, and
// the mount namespace of the image it is a name in (0 for fd's process's
// own): on the mount fd was opened on when its process sees it, else on
// any recorded mount of its filesystem; and the mount point of fd's mount.
func linkedName(c *DumpContext, fd *Fd, f *ckpt.File) {
	var views []MountView
	if point, ok := mountPointOf(fd); ok {
		views = append(views, MountView{Pid: fd.Pid, Path: point})
		f.MountPoint = point
	}
	views = append(views, c.mountsOf(fd)...)
	for _, v := range views {
		if name := nameOnMount(v, fd.Stat.Dev, fd.Stat.Ino); name != "" {
			f.Linked, f.LinkedNamespace = name, v.Namespace
			return
		}
	}
}

// mountPointOf is the mount point of the mount fd was opened on, when
// its process's mount namespace shows it.
func mountPointOf(fd *Fd) (string, bool) {
	if fd.Info.MntID == 0 {
		return "", false
	}
	mounts, err := procfs.ReadMountinfo(fd.Pid)
	if err != nil {
		return "", false
	}
	m, ok := procfs.FindMount(mounts, fd.Info.MntID)
	return m.MountPoint, ok
}

// mountsOf is MountsOf for fd's filesystem, those showing all of it
// first; none when unset.
func (c *DumpContext) mountsOf(fd *Fd) []MountView {
	if c.MountsOf == nil {
		return nil
	}
	views := c.MountsOf(fd.Pid, fd.Stat.Dev)
	whole := func(v MountView) int {
		if v.Root == "/" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(views, func(a, b MountView) int { return whole(a) - whole(b) })
	return views
}

// nameOnMount walks mount v for a name of inode ino of filesystem dev
// that is not a directory, and returns it from v's namespace's root.
func nameOnMount(v MountView, dev, ino uint64) string {
	root := "/proc/" + strconv.Itoa(v.Pid) + "/root" + v.Path
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil || st.Dev != dev {
		return "" // covered by another mount
	}
	found, n := "", 0
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > maxLinkedWalk {
			return errWalkDone
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) != nil || st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Ino == ino && !d.IsDir() {
			if rel, err := filepath.Rel(root, path); err == nil {
				found = filepath.Join(v.Path, rel)
			}
			return errWalkDone
		}
		return nil
	})
	return found
}

// openLinked opens f, whose handle is stale, by its other name, on the
// mount it was opened on when that is known (by the file's new handle: a
// file is opened by handle on the mount of the directory given, even
// outside what that mount shows).
func openLinked(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	host, ok := c.pathIn(t, f.LinkedNamespace, f.Linked)
	if !ok {
		return -1, fmt.Errorf("%s, removed, is %s in mount namespace %d: that namespace is not made again here", f.Path, f.Linked, f.LinkedNamespace)
	}
	local, err := unix.Open(host, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%s, removed, by its other name: open %s: %w", f.Path, f.Linked, os.NewSyscallError("open", err))
	}
	defer func() { unix.Close(local) }()
	local = onMountOf(c, t, f, local)
	if on, ok := relinkedAt(c, t, f, local); ok {
		unix.Close(local)
		local = on
	}
	fd, err := c.reopen(t, local, reopenFlags(f.Flags))
	if err != nil {
		return -1, fmt.Errorf("%s, removed, by its other name %s: %w", f.Path, f.Linked, err)
	}
	return fd, seek(t, fd, f.Pos)
}

// relinkedAt opens local, a file with another name opened on the mount f
// was opened on (linkat links on one mount only), again by a name
// linked for the moment under the name f had (or a hidden one beside it)
// and removed again, when that directory is still there on the mount f
// was opened on: the description has the mount and the removed name it
// had, as CRIU's link-remap file gives it.
func relinkedAt(c *RestoreContext, t Target, f *ckpt.File, local int) (int, bool) {
	if f.MountPoint == "" || !strings.HasPrefix(f.Path, strings.TrimSuffix(f.MountPoint, "/")+"/") {
		return -1, false
	}
	at := c.hostPath(t, f.Path)
	if _, err := os.Stat(filepath.Dir(at)); err != nil {
		return -1, false
	}
	name, _, err := ghostName(at, func(name string) (*os.File, error) {
		return nil, unix.Linkat(local, "", unix.AT_FDCWD, name, unix.AT_EMPTY_PATH)
	})
	if err != nil {
		return -1, false
	}
	defer c.remove(name)
	if c.Journal.Made(name) != nil {
		return -1, false
	}
	on, err := unix.Open(name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	return on, true
}

// onMountOf is local, a removed file, opened again on the mount f was
// opened on (MountPoint) when it is known, else local itself; it closes
// the local it replaces.
func onMountOf(c *RestoreContext, t Target, f *ckpt.File, local int) int {
	if f.MountPoint == "" {
		return local
	}
	on, err := onMount(local, c.hostPath(t, f.MountPoint))
	if err != nil {
		t.Warn("removed file opened on another mount than it was", "path", f.Path, "mount", f.MountPoint, "err", err)
		return local
	}
	unix.Close(local)
	return on
}

// onMount opens the file of fd again on the mount of directory mnt, by
// its handle, O_PATH (open_by_handle_at takes no O_PATH directory).
func onMount(fd int, mnt string) (int, error) {
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, os.NewSyscallError("name_to_handle_at", err)
	}
	dir, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open", err)
	}
	defer unix.Close(dir)
	on, err := unix.OpenByHandleAt(dir, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("open_by_handle_at", err)
	}
	return on, nil
}

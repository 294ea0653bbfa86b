package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// What the inotify and fanotify kinds share: the file a watch or an inode
// mark is on. fdinfo names it by its device, inode and file handle; the
// checkpoint opens it by handle (open_by_handle_at, which needs
// CAP_DAC_READ_SEARCH) and records
//
//   - its path, when it has one;
//   - its ghost, when its last name was removed (something still holds it
//     open): the same ghost record the descriptions open on it depend on,
//     so that after restart the watch is on the file they have open;
//   - its handle, when it has a name crsub cannot find (a name removed
//     while another link remains, or none of its names is in the dentry
//     cache: the handle's dentry is then disconnected and reads as "/").
//
// A file on a filesystem crsub sees no mount of (a tmpfs mounted in another
// mount namespace of the image) is found through the recorded mounts of the
// image's mount namespaces, and named as its namespace shows it.
//
// A restart reaches a ghost or a file by handle through crsub's own fd on
// it (/proc/CRSUB/fd/N), so the watch is added to that very inode; a file
// named in a mount namespace of the image through that namespace's root.

// watchedFile is where a watched file was found.
type watchedFile struct {
	Path   string
	Handle *ckpt.FileHandle
	Ghost  ckpt.Objref
	// MountNamespace: see ckpt.InotifyWatch.
	MountNamespace uint64
}

// watchedFile finds the file of inode ino on dev, whose handle is h,
// through a mount of its filesystem (mounts are crsub's): whole-filesystem
// mounts first, as a bind mount of a subdirectory cannot reach files outside
// it. A ghost's record is written here if it was not yet.
func (c *DumpContext) watchedFile(dev, ino uint64, h *procfs.FileHandle, mounts []procfs.Mount) (watchedFile, error) {
	if h == nil {
		return watchedFile{}, errors.New("fdinfo gives no file handle for it (the filesystem cannot export one): not supported yet")
	}
	handle := unix.NewFileHandle(h.Type, h.Handle)
	cands := mountsOf(dev, mounts)
	if len(cands) == 0 {
		return c.watchedInNamespace(dev, ino, handle)
	}
	var errs []error
	for _, m := range cands {
		w, err := c.watchedThrough(m.MountPoint, handle, dev, ino)
		if err == nil {
			return w, nil
		}
		errs = append(errs, fmt.Errorf("through %s: %w", m.MountPoint, err))
	}
	return watchedFile{}, errors.Join(errs...)
}

// watchedInNamespace finds the file of inode ino on dev, whose handle is
// h, through a recorded mount of its filesystem in a mount namespace of the
// image, when crsub sees none: its name is the one that namespace shows.
func (c *DumpContext) watchedInNamespace(dev, ino uint64, h unix.FileHandle) (watchedFile, error) {
	var views []MountView
	if c.MountsOf != nil {
		// Asked as crsub, whose namespace is none of the image's: each
		// view names its namespace.
		views = c.MountsOf(os.Getpid(), dev)
	}
	if len(views) == 0 {
		return watchedFile{}, errors.New("no mount of its filesystem is visible")
	}
	var errs []error
	for _, v := range views {
		root := "/proc/" + strconv.Itoa(v.Pid) + "/root"
		name, err := nameThrough(root, v.Path, h, dev, ino)
		if err == nil {
			return watchedFile{Path: name, MountNamespace: v.Namespace}, nil
		}
		errs = append(errs, fmt.Errorf("through %s in mount namespace %d: %w", v.Path, v.Namespace, err))
	}
	return watchedFile{}, errors.Join(errs...)
}

// nameThrough opens handle h through the mount at mountPoint of the mount
// namespace whose root crsub reaches at root, and names the file as that
// namespace shows it: a file with a name its root reaches (not removed).
func nameThrough(root, mountPoint string, h unix.FileHandle, dev, ino uint64) (string, error) {
	f, err := openHandleAt(root+mountPoint, h)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The kernel names a file on a mount crsub's root does not reach
	// from the root of that mount's namespace.
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", err
	}
	link := procfs.ParseFdTarget(target)
	var st unix.Stat_t
	if link.Kind != procfs.FdFile || link.Deleted || unix.Lstat(root+link.Path, &st) != nil || st.Dev != dev || st.Ino != ino {
		return "", fmt.Errorf("no name of it reaches it (its handle opens %s): not supported yet", target)
	}
	return link.Path, nil
}

func (c *DumpContext) watchedThrough(mountPoint string, h unix.FileHandle, dev, ino uint64) (watchedFile, error) {
	f, err := openHandleAt(mountPoint, h)
	if err != nil {
		return watchedFile{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return watchedFile{}, os.NewSyscallError("fstat", err)
	}
	if st.Ino != ino || st.Dev != dev {
		return watchedFile{}, fmt.Errorf("its handle opens inode %d on %d:%d", st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return watchedFile{}, err
	}
	link := procfs.ParseFdTarget(target)
	if link.Kind != procfs.FdFile {
		return watchedFile{}, fmt.Errorf("the watched file has no path (%s): not supported yet", target)
	}
	if !link.Deleted {
		// A dentry the handle made up, not connected to its directory
		// (none of the file's names is cached), reads as "/".
		var ls unix.Stat_t
		if err := unix.Lstat(link.Path, &ls); err == nil && ls.Ino == ino && ls.Dev == dev {
			return watchedFile{Path: link.Path}, nil
		}
	}
	switch {
	case st.Nlink > 0 && fileType(&st) != unix.S_IFDIR:
		// Linked somewhere crsub cannot name: its handle opens it again.
		w := watchedFile{Handle: &ckpt.FileHandle{Type: h.Type(), Bytes: h.Bytes()}}
		if link.Deleted {
			w.Path = link.Path // for messages
		}
		return w, nil
	case !link.Deleted:
		return watchedFile{}, fmt.Errorf("no path reaches it (its handle opens %s)", target)
	case fileType(&st) == unix.S_IFDIR:
		return watchedFile{}, fmt.Errorf("removed directory %s: not supported yet", link.Path)
	}
	// Removed: a ghost, as the descriptions open on it.
	ghost, err := dumpGhost(c, &Fd{Pid: os.Getpid(), Num: int(f.Fd()), Link: link, Stat: st, Copy: f})
	if err != nil {
		return watchedFile{}, err
	}
	return watchedFile{Path: link.Path, Ghost: ghost}, nil
}

// openHandleAt opens handle h (O_PATH) on the filesystem mounted at
// mountPoint.
func openHandleAt(mountPoint string, h unix.FileHandle) (*os.File, error) {
	mfd, err := unix.Open(mountPoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("open", err)
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("open_by_handle_at", err)
	}
	return os.NewFile(uintptr(fd), mountPoint), nil
}

// mountsOf lists the mounts of device dev, those of the filesystem's root
// first.
func mountsOf(dev uint64, mounts []procfs.Mount) []procfs.Mount {
	var root, other []procfs.Mount
	for _, m := range mounts {
		switch {
		case m.Dev != dev:
		case m.Root == "/":
			root = append(root, m)
		default:
			other = append(other, m)
		}
	}
	return append(root, other...)
}

// watchedPath is the path target t adds a restored watch or mark through,
// and whether it is an fd on the file (a link to follow) rather than the
// file's own path. done lets go of what it took. The path recorded is as
// crsub reaches the file: a t in a mount namespace of its own, whose root
// and /proc are others, is given crsub's fd on the file and adds the watch
// through its own /proc/self/fd.
func (c *RestoreContext) watchedPath(t Target, w watchedFile, dev, ino uint64) (path string, viaFd bool, done func(), err error) {
	done = func() {}
	apart := c.hostPath(t, "/") != "/" && c.Take != nil
	var local *os.File
	switch {
	case w.MountNamespace != 0:
		host, ok := c.pathIn(t, w.MountNamespace, w.Path)
		if !ok {
			return "", false, done, fmt.Errorf("%s in mount namespace %d: that namespace is not made again here", w.Path, w.MountNamespace)
		}
		f, err := os.OpenFile(host, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", false, done, err
		}
		local, done = f, func() { f.Close() }
	case w.Ghost != 0:
		if local = c.ghosts[w.Ghost]; local == nil {
			return "", false, done, fmt.Errorf("deleted %s: its ghost record is missing", w.Path)
		}
	case w.Handle != nil:
		f, err := openWatchedByHandle(w, dev, ino)
		if err != nil {
			return "", false, done, fmt.Errorf("opening it by its handle: %w", err)
		}
		local, done = f, func() { f.Close() }
	case !apart:
		return w.Path, false, done, nil
	default:
		f, err := os.OpenFile(w.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", false, done, err
		}
		local, done = f, func() { f.Close() }
	}
	if !apart {
		return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), local.Fd()), true, done, nil
	}
	fd, err := c.Take(int(local.Fd()), t)
	if err != nil {
		done()
		return "", false, func() {}, err
	}
	closeLocal := done
	done = func() {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		closeLocal()
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), true, done, nil
}

// openWatchedByHandle opens a watched file by its handle through a mount of
// its filesystem, and checks it is the same file.
func openWatchedByHandle(w watchedFile, dev, ino uint64) (*os.File, error) {
	mounts, err := procfs.ReadMountinfo(os.Getpid())
	if err != nil {
		return nil, err
	}
	cands := mountsOf(dev, mounts)
	if len(cands) == 0 {
		return nil, fmt.Errorf("no mount of %d:%d is visible", unix.Major(dev), unix.Minor(dev))
	}
	h := unix.NewFileHandle(w.Handle.Type, w.Handle.Bytes)
	var errs []error
	for _, m := range cands {
		f, err := openHandleAt(m.MountPoint, h)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(int(f.Fd()), &st); err == nil && (st.Ino != ino || st.Dev != dev) {
				err = fmt.Errorf("its handle opens inode %d on %d:%d, not %d", st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev), ino)
			}
			if err == nil {
				return f, nil
			}
			f.Close()
		}
		errs = append(errs, fmt.Errorf("through %s: %w", m.MountPoint, err))
	}
	return nil, errors.Join(errs...)
}

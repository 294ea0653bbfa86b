package sys

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The new mount API (open_tree, fsopen/fsconfig/fsmount, move_mount,
// mount_setattr): mounts are made detached, as fds, filled and arranged
// into a tree through those fds, and attached where they belong, with no
// path of the caller's namespace involved but the last one.

// CloneMount returns a detached copy of the mount at path (relative to
// dirfd; "" for dirfd itself), without the mounts below it
// (open_tree(OPEN_TREE_CLONE)). The mount at path must be in the caller's
// mount namespace, or a detached one.
func CloneMount(dirfd int, path string) (*FD, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := retry(func() (int, error) { return unix.OpenTree(dirfd, path, uint(flags)) })
	if err != nil {
		return nil, os.NewSyscallError("open_tree", fmt.Errorf("%s: %w", path, err))
	}
	return NewFD(fd), nil
}

// PathOfMount returns an O_PATH fd on the mount at path (relative to
// dirfd) itself, not a copy (open_tree without OPEN_TREE_CLONE).
func PathOfMount(dirfd int, path string) (*FD, error) {
	flags := unix.OPEN_TREE_CLOEXEC
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := retry(func() (int, error) { return unix.OpenTree(dirfd, path, uint(flags)) })
	if err != nil {
		return nil, os.NewSyscallError("open_tree", fmt.Errorf("%s: %w", path, err))
	}
	return NewFD(fd), nil
}

// FSConfig is one fsconfig(FSCONFIG_SET_*) setting of a filesystem
// context: a flag (Value and FD unset), a string, or an fd.
type FSConfig struct {
	Key   string
	Value string
	FD    int // > 0: FSCONFIG_SET_FD
}

// NewMount makes a new filesystem of type fstype with the given settings
// and returns a detached mount of it with the MOUNT_ATTR_* flags attr
// (fsopen, fsconfig, FSCONFIG_CMD_CREATE, fsmount). The error says which
// setting the filesystem refused.
func NewMount(fstype string, settings []FSConfig, attr int) (*FD, error) {
	fsfd, err := retry(func() (int, error) { return unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC) })
	if err != nil {
		return nil, os.NewSyscallError("fsopen", fmt.Errorf("%s: %w", fstype, err))
	}
	fs := NewFD(fsfd)
	defer fs.Close()
	for _, s := range settings {
		var err error
		switch {
		case s.FD > 0:
			err = unix.FsconfigSetFd(fsfd, s.Key, s.FD)
		case s.Value != "":
			err = unix.FsconfigSetString(fsfd, s.Key, s.Value)
		default:
			err = unix.FsconfigSetFlag(fsfd, s.Key)
		}
		if err != nil {
			return nil, os.NewSyscallError("fsconfig", fmt.Errorf("%s option %s: %w", fstype, s.Key, err))
		}
	}
	if _, err := retry(func() (int, error) { return 0, unix.FsconfigCreate(fsfd) }); err != nil {
		return nil, os.NewSyscallError("fsconfig", fmt.Errorf("creating %s: %w", fstype, err))
	}
	mfd, err := retry(func() (int, error) { return unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr) })
	if err != nil {
		return nil, os.NewSyscallError("fsmount", fmt.Errorf("%s: %w", fstype, err))
	}
	return NewFD(mfd), nil
}

// Reconfigure sets flags (such as "ro") on the filesystem of mount fd, as
// mount -o remount does for the superblock (fspick, fsconfig,
// FSCONFIG_CMD_RECONFIGURE).
func Reconfigure(mount int, flags ...string) error {
	fsfd, err := retry(func() (int, error) {
		return unix.Fspick(mount, "", unix.FSPICK_CLOEXEC|unix.FSPICK_EMPTY_PATH|unix.FSPICK_NO_AUTOMOUNT)
	})
	if err != nil {
		return os.NewSyscallError("fspick", err)
	}
	defer unix.Close(fsfd)
	for _, f := range flags {
		if err := unix.FsconfigSetFlag(fsfd, f); err != nil {
			return os.NewSyscallError("fsconfig", fmt.Errorf("%s: %w", f, err))
		}
	}
	if _, err := retry(func() (int, error) { return 0, unix.FsconfigReconfigure(fsfd) }); err != nil {
		return os.NewSyscallError("fsconfig", fmt.Errorf("reconfigure: %w", err))
	}
	return nil
}

// AttachMount attaches mount (a detached one, or one to move) onto the
// file or directory target is open on (an O_PATH fd): the mount then
// covers it (move_mount).
func AttachMount(mount, target int) error {
	_, err := retry(func() (int, error) {
		return 0, unix.MoveMount(mount, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	})
	return os.NewSyscallError("move_mount", err)
}

// AttachMountAt is AttachMount onto path of the caller's namespace.
func AttachMountAt(mount int, path string) error {
	_, err := retry(func() (int, error) {
		return 0, unix.MoveMount(mount, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
	})
	if err != nil {
		return os.NewSyscallError("move_mount", fmt.Errorf("onto %s: %w", path, err))
	}
	return nil
}

// JoinPeerGroup gives mount to the propagation of mount from: a peer of
// from's peer group and a slave of its master, as from is
// (move_mount(MOVE_MOUNT_SET_GROUP), Linux 5.15). Both are of one
// filesystem, to private, its root at or below from's.
func JoinPeerGroup(from, to int) error {
	_, err := retry(func() (int, error) {
		return 0, unix.MoveMount(from, "", to, "", unix.MOVE_MOUNT_SET_GROUP|unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	})
	return os.NewSyscallError("move_mount(MOVE_MOUNT_SET_GROUP)", err)
}

// SetMountAttr sets the MOUNT_ATTR_* flags set and clears clear on mount
// fd alone, and sets its propagation (unix.MS_SHARED, MS_SLAVE,
// MS_PRIVATE, MS_UNBINDABLE; 0 leaves it) (mount_setattr).
func SetMountAttr(mount int, set, clear uint64, propagation uint64) error {
	attr := &unix.MountAttr{Attr_set: set, Attr_clr: clear, Propagation: propagation}
	_, err := retry(func() (int, error) { return 0, unix.MountSetattr(mount, "", unix.AT_EMPTY_PATH, attr) })
	return os.NewSyscallError("mount_setattr", err)
}

// OpenBeneath opens path under dirfd, O_PATH, without crossing into
// another mount or following a symbolic link on the way (openat2 with
// RESOLVE_BENEATH, RESOLVE_NO_XDEV, RESOLVE_NO_SYMLINKS): the file or
// directory of dirfd's own filesystem a mount is to cover.
func OpenBeneath(dirfd int, path string) (*FD, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := retry(func() (int, error) { return unix.Openat2(dirfd, path, how) })
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	return NewFD(fd), nil
}

// MountID is the id of the mount fd is on (statx STATX_MNT_ID), as
// /proc/PID/mountinfo names mounts.
func MountID(fd int) (int, error) {
	var stx unix.Statx_t
	_, err := retry(func() (int, error) {
		return 0, unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	})
	if err != nil {
		return 0, os.NewSyscallError("statx", err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, os.NewSyscallError("statx", fmt.Errorf("no mount id: %w", unix.ENOTSUP))
	}
	return int(stx.Mnt_id), nil
}

// PivotRoot makes the mount at the caller's working directory the root of
// its mount namespace, for every task whose root was the old one, and
// detaches the old root (pivot_root(".", ".") and umount2(".",
// MNT_DETACH): the old root goes on top of the new one, and leaves).
func PivotRoot() error {
	if _, err := retry(func() (int, error) { return 0, unix.PivotRoot(".", ".") }); err != nil {
		return os.NewSyscallError("pivot_root", err)
	}
	if _, err := retry(func() (int, error) { return 0, unix.Unmount(".", unix.MNT_DETACH) }); err != nil {
		return os.NewSyscallError("umount2", fmt.Errorf("the old root: %w", err))
	}
	return nil
}

// InMountNamespace runs fn on an OS thread of crsub that joined the
// namespaces nstypes (CLONE_NEW* flags, CLONE_NEWNS among them) of the
// process of pidfd. A thread can only join a mount namespace with a
// filesystem context of its own (unshare(CLONE_FS)), which it cannot give
// back: it is never used again, ending with fn, back in crsub's
// namespaces first (the runtime cannot end the main thread, which would
// stay where it is, and /proc/self/ shows that one). before, if set, runs
// on the thread first, still in crsub's namespaces: what needs crsub's
// view of the filesystem (a detached copy of a mount of it) is taken
// there.
func InMountNamespace(pidfd, nstypes int, before, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: the thread exits with this goroutine.
		errc <- inMountNamespace(pidfd, nstypes, before, fn)
	}()
	return <-errc
}

func inMountNamespace(pidfd, nstypes int, before, fn func() error) (err error) {
	if err := retryErr(func() error { return unix.Unshare(unix.CLONE_FS) }); err != nil {
		return os.NewSyscallError("unshare(CLONE_FS)", err)
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	var own []int
	defer func() {
		for _, fd := range own {
			unix.Close(fd)
		}
	}()
	for typ, name := range nsNames {
		if nstypes&typ == 0 {
			continue
		}
		fd, err := retry(func() (int, error) {
			return unix.Open("/proc/thread-self/ns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return &os.PathError{Op: "open", Path: "/proc/thread-self/ns/" + name, Err: err}
		}
		own = append(own, fd)
	}
	if err := retryErr(func() error { return unix.Setns(pidfd, nstypes) }); err != nil {
		return os.NewSyscallError("setns", err)
	}
	defer func() {
		for _, fd := range own {
			if berr := retryErr(func() error { return unix.Setns(fd, 0) }); berr != nil && err == nil {
				err = fmt.Errorf("back to crsub's namespace: %w", os.NewSyscallError("setns", berr))
			}
		}
	}()
	return fn()
}

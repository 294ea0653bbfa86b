package files

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// An inotify instance is its watches: each watched file's path, its mask
// and its watch descriptor. fdinfo names a watched file by a file handle,
// which the checkpoint turns into a path, or a ghost when the file's last
// name was removed, or keeps when it was removed but is linked elsewhere
// (watch.go). Events queued and not read at checkpoint time are dropped,
// with a warning.
//
// A restart adds the watches again in watch-descriptor order. The kernel
// numbers a new instance's watches 1, 2, 3… (cyclically, never reusing a
// number at once), so the numbers a program freed before the checkpoint are
// used up by adding and removing a watch; the IN_IGNORED events that leaves
// are read out of the queue before the program runs.
var inotifyKind = &Kind{
	Files:   []string{ckpt.FileInotify},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdInotify },
	Dump:    dumpInotify,
	Restore: restoreInotify,
}

// maxBurnedWatches bounds the watch descriptors a restart uses up to reach
// a program's numbers: each costs two injected system calls.
const maxBurnedWatches = 1 << 16

func dumpInotify(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	// FIONREAD (TIOCINQ on Linux) counts the bytes of queued events.
	if n, err := unix.IoctlGetInt(int(fd.Copy.Fd()), unix.TIOCINQ); err == nil && n > 0 {
		c.Log.Warn("inotify: events not read yet are dropped", "pid", fd.Pid, "fd", fd.Num, "bytes", n)
	}
	watches := slices.Clone(fd.Info.Inotify)
	slices.SortFunc(watches, func(a, b procfs.InotifyWatch) int { return a.WD - b.WD })
	st := &ckpt.InotifyState{}
	var deps []ckpt.Objref
	var mounts []procfs.Mount
	for _, w := range watches {
		if mounts == nil {
			var err error
			if mounts, err = procfs.ReadMountinfo(os.Getpid()); err != nil {
				return 0, err
			}
		}
		file, err := c.watchedFile(w.Dev, w.Ino, w.Handle, mounts)
		if err != nil {
			return 0, fmt.Errorf("inotify watch %d (inode %d on %d:%d): %w", w.WD, w.Ino, unix.Major(w.Dev), unix.Minor(w.Dev), err)
		}
		if file.Ghost != 0 && !slices.Contains(deps, file.Ghost) {
			deps = append(deps, file.Ghost)
		}
		st.Watches = append(st.Watches, ckpt.InotifyWatch{WD: w.WD, Path: file.Path, Mask: w.Mask, Dev: w.Dev, Inode: w.Ino, Handle: file.Handle, Ghost: file.Ghost, MountNamespace: file.MountNamespace})
	}
	f := ckpt.File{Kind: ckpt.FileInotify, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}, Inotify: st}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, deps, &f)
}

func restoreInotify(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Inotify != nil {
		for _, w := range f.Inotify.Watches {
			if _, made := c.pathIn(t, w.MountNamespace, w.Path); !made {
				// A watch in the mount namespace of a process made
				// after this one.
				return openLater(c, t, rec.Objref, func(t Target) (int, error) { return restoreInotifyNow(c, t, f) })
			}
		}
	}
	return restoreInotifyNow(c, t, f)
}

func restoreInotifyNow(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	st := f.Inotify
	if st == nil {
		return -1, errors.New("inotify: no watches in the image")
	}
	flags := uint64(unix.IN_CLOEXEC)
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.IN_NONBLOCK
	}
	fdv, err := t.Syscall(unix.SYS_INOTIFY_INIT1, flags)
	if err != nil {
		return -1, fmt.Errorf("inotify_init1: %w", err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	add := func(w *ckpt.InotifyWatch) (int, error) {
		path, viaFd, done, err := c.watchedPath(t, watchedFile{Path: w.Path, Handle: w.Handle, Ghost: w.Ghost, MountNamespace: w.MountNamespace}, w.Dev, w.Inode)
		if err != nil {
			return -1, err
		}
		defer done()
		addr, err := t.Scratch(append([]byte(path), 0))
		if err != nil {
			return -1, err
		}
		mask := w.Mask
		if !viaFd {
			// The path is the watched file's own, not a link to follow.
			mask |= unix.IN_DONT_FOLLOW
		}
		wd, err := t.Syscall(unix.SYS_INOTIFY_ADD_WATCH, uint64(fd), addr, uint64(mask))
		return int(wd), err
	}
	rm := func(wd int) error {
		_, err := t.Syscall(unix.SYS_INOTIFY_RM_WATCH, uint64(fd), uint64(wd))
		return err
	}
	drain := func() error {
		cp, err := t.Copy(fd)
		if err != nil {
			return err
		}
		defer cp.Close()
		return drainInotify(int(cp.Fd()))
	}
	for i := range st.Watches {
		w := &st.Watches[i]
		if w.Ghost != 0 || w.Handle != nil {
			continue // the same inode, by crsub's fd on it
		}
		path := w.Path
		if w.MountNamespace != 0 {
			// Its filesystem may be made anew there: another device,
			// inodes kept or not. Only its name is checked.
			host, ok := c.pathIn(t, w.MountNamespace, w.Path)
			if !ok {
				return fail(fmt.Errorf("inotify watch %d: %s in mount namespace %d: that namespace is not made again here", w.WD, w.Path, w.MountNamespace))
			}
			path = host
		}
		var s unix.Stat_t
		if err := unix.Lstat(path, &s); err != nil {
			return fail(fmt.Errorf("inotify watch %d: %w", w.WD, os.NewSyscallError("lstat", err)))
		}
		if w.MountNamespace == 0 && (s.Ino != w.Inode || s.Dev != w.Dev) {
			t.Warn("inotify: watched file was replaced since the checkpoint; watching the new one", "path", w.Path, "wd", w.WD)
		}
	}
	if err := addWatches(st.Watches, add, rm, drain); err != nil {
		return fail(fmt.Errorf("inotify: %w", err))
	}
	return fd, nil
}

// addWatches adds watches (in wd order) to a new inotify instance so that
// each gets its own watch descriptor, using up the numbers in between by
// adding and removing it, and reads the IN_IGNORED events that leaves out of
// the queue (drain) before it overflows and at the end.
func addWatches(watches []ckpt.InotifyWatch, add func(*ckpt.InotifyWatch) (int, error), rm func(int) error, drain func() error) error {
	watches = slices.Clone(watches)
	slices.SortStableFunc(watches, func(a, b ckpt.InotifyWatch) int { return a.WD - b.WD })
	done := map[int]bool{}
	burned := 0
	for i := range watches {
		w := &watches[i]
		if done[w.WD] {
			return fmt.Errorf("watch descriptor %d appears twice", w.WD)
		}
		for {
			wd, err := add(w)
			if err != nil {
				return fmt.Errorf("inotify_add_watch(%s, %#x) for wd %d: %w", watchName(w), w.Mask, w.WD, err)
			}
			if wd == w.WD {
				break
			}
			if wd > w.WD || done[wd] {
				return fmt.Errorf("watch of %s got watch descriptor %d instead of %d", watchName(w), wd, w.WD)
			}
			if burned >= maxBurnedWatches {
				return fmt.Errorf("watch of %s: reaching watch descriptor %d needs more than %d unused numbers", watchName(w), w.WD, maxBurnedWatches)
			}
			if err := rm(wd); err != nil {
				return fmt.Errorf("inotify_rm_watch(%d): %w", wd, err)
			}
			burned++
			if burned%4096 == 0 {
				if err := drain(); err != nil {
					return fmt.Errorf("reading IN_IGNORED events: %w", err)
				}
			}
		}
		done[w.WD] = true
	}
	if burned > 0 {
		if err := drain(); err != nil {
			return fmt.Errorf("reading IN_IGNORED events: %w", err)
		}
	}
	return nil
}

// watchName names a watched file in messages.
func watchName(w *ckpt.InotifyWatch) string {
	if w.Path == "" {
		return fmt.Sprintf("inode %d", w.Inode)
	}
	return w.Path
}

// drainInotify reads every queued event of an inotify fd without blocking.
func drainInotify(fd int) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
		if err != nil {
			return os.NewSyscallError("ioctl(FIONREAD)", err)
		}
		if n == 0 {
			return nil
		}
		if _, err := unix.Read(fd, buf); err != nil && err != unix.EINTR {
			return os.NewSyscallError("read", err)
		}
	}
}

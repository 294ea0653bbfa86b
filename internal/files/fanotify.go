package files

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A fanotify group is its fanotify_init flags and its marks, as fdinfo
// lists them: inode marks by file handle (found as an inotify watch's file
// is, watch.go), mount marks by mount id, filesystem marks by device.
// Events queued and not read at checkpoint time are dropped, with a
// warning (a permission event waiting for its answer too: the process that
// caused it was frozen and is gone or goes on).
//
// A restart calls fanotify_init with the same flags and adds each mark
// again with fanotify_mark: an inode mark on the file's path (or crsub's
// fd on its ghost, or on the file opened by handle), a mount or
// filesystem mark on the mount point.
var fanotifyKind = &Kind{
	Files:   []string{ckpt.FileFanotify},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdFanotify },
	Dump:    dumpFanotify,
	Restore: restoreFanotify,
}

func dumpFanotify(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	info := fd.Info.Fanotify
	if info == nil {
		return 0, errors.New("fdinfo shows no fanotify flags")
	}
	if other := fd.Info.Extra["fanotify"]; len(other) > 0 {
		return 0, fmt.Errorf("a mark of a kind crsub does not know (%s): not supported yet", other[0])
	}
	if n, err := unix.IoctlGetInt(int(fd.Copy.Fd()), unix.TIOCINQ); err == nil && n > 0 { // FIONREAD
		c.Log.Warn("fanotify: events not read yet are dropped", "pid", fd.Pid, "fd", fd.Num, "bytes", n)
	}
	st := &ckpt.FanotifyState{Flags: info.Flags, EventFlags: info.EventFlags}
	var deps []ckpt.Objref
	var mine, theirs []procfs.Mount
	// fdinfo lists the newest mark first.
	for _, m := range slices.Backward(info.Marks) {
		mark := ckpt.FanotifyMark{Dev: m.Dev, Flags: m.MFlags, Mask: m.Mask, IgnoredMask: m.IgnoredMask}
		var err error
		if mine == nil {
			if mine, err = procfs.ReadMountinfo(os.Getpid()); err != nil {
				return 0, err
			}
		}
		switch m.Kind {
		case procfs.FanotifyMarkInode:
			mark.Kind, mark.Inode = ckpt.FanotifyInode, m.Ino
			file, err := c.watchedFile(m.Dev, m.Ino, m.Handle, mine)
			if err != nil {
				return 0, fmt.Errorf("fanotify mark on inode %d on %d:%d: %w", m.Ino, unix.Major(m.Dev), unix.Minor(m.Dev), err)
			}
			mark.Path, mark.Handle, mark.Ghost, mark.MountNamespace = file.Path, file.Handle, file.Ghost, file.MountNamespace
			if file.Ghost != 0 && !slices.Contains(deps, file.Ghost) {
				deps = append(deps, file.Ghost)
			}
		case procfs.FanotifyMarkMount:
			mark.Kind, mark.MountID = ckpt.FanotifyMount, m.MntID
			if theirs == nil {
				if theirs, err = procfs.ReadMountinfo(fd.Pid); err != nil {
					return 0, err
				}
			}
			i := slices.IndexFunc(theirs, func(mt procfs.Mount) bool { return mt.ID == m.MntID })
			if i < 0 {
				return 0, fmt.Errorf("fanotify mark on mount %d, which %d's mountinfo does not list", m.MntID, fd.Pid)
			}
			mark.Path, mark.Dev = theirs[i].MountPoint, theirs[i].Dev
		case procfs.FanotifyMarkFilesystem:
			mark.Kind = ckpt.FanotifyFilesystem
			mounts := mountsOf(m.Dev, mine)
			if len(mounts) == 0 {
				return 0, fmt.Errorf("fanotify mark on filesystem %d:%d, of which no mount is visible", unix.Major(m.Dev), unix.Minor(m.Dev))
			}
			mark.Path = mounts[0].MountPoint
		default:
			return 0, fmt.Errorf("a mark of kind %d: not supported yet", m.Kind)
		}
		st.Marks = append(st.Marks, mark)
	}
	f := ckpt.File{Kind: ckpt.FileFanotify, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}, Fanotify: st}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, deps, &f)
}

func restoreFanotify(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	st := f.Fanotify
	if st == nil {
		return -1, errors.New("fanotify: no group settings in the image")
	}
	// The flags as they were, FAN_CLOEXEC included or not, since fdinfo
	// shows them: the driver sets the fd's close-on-exec.
	fdv, err := t.Syscall(unix.SYS_FANOTIFY_INIT, uint64(st.Flags), uint64(st.EventFlags))
	if err != nil {
		return -1, fmt.Errorf("fanotify_init(%#x, %#o): %w", st.Flags, st.EventFlags, err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	// O_NONBLOCK may have changed since fanotify_init (F_SETFL).
	nonblock := f.Flags&unix.O_NONBLOCK != 0
	if nonblock != (st.Flags&unix.FAN_NONBLOCK != 0) {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(f.Flags&unix.O_NONBLOCK)); err != nil {
			return fail(fmt.Errorf("fcntl F_SETFL: %w", err))
		}
	}
	for i := range st.Marks {
		if err := addMark(c, t, fd, &st.Marks[i]); err != nil {
			return fail(err)
		}
	}
	return fd, nil
}

// addMark adds one mark to fanotify group fd in t: its event mask, then its
// ignore mask.
func addMark(c *RestoreContext, t Target, fd int, m *ckpt.FanotifyMark) error {
	var on uint
	path := m.Path
	switch m.Kind {
	case ckpt.FanotifyInode:
		p, viaFd, done, err := c.watchedPath(t, watchedFile{Path: m.Path, Handle: m.Handle, Ghost: m.Ghost, MountNamespace: m.MountNamespace}, m.Dev, m.Inode)
		if err != nil {
			return fmt.Errorf("fanotify mark on %s: %w", markName(m), err)
		}
		defer done()
		path = p
		if !viaFd {
			// The path is the marked file's own, not a link to follow.
			on |= unix.FAN_MARK_DONT_FOLLOW
			var s unix.Stat_t
			if err := unix.Lstat(path, &s); err != nil {
				return fmt.Errorf("fanotify mark on %s: %w", path, err)
			}
			if s.Ino != m.Inode || s.Dev != m.Dev {
				t.Warn("fanotify: marked file was replaced since the checkpoint; marking the new one", "path", path)
			}
		}
	case ckpt.FanotifyMount:
		on = unix.FAN_MARK_MOUNT
	case ckpt.FanotifyFilesystem:
		on = unix.FAN_MARK_FILESYSTEM
	default:
		return fmt.Errorf("fanotify mark of kind %q: not supported", m.Kind)
	}
	if m.Kind != ckpt.FanotifyInode {
		var s unix.Stat_t
		if err := unix.Stat(path, &s); err != nil {
			return fmt.Errorf("fanotify %s mark on %s: %w", m.Kind, path, err)
		}
		if s.Dev != m.Dev {
			t.Warn("fanotify: the mount marked is no longer of the same device; marking it still", "path", path, "kind", m.Kind)
		}
	}
	on |= uint(m.Flags) & unix.FAN_MARK_EVICTABLE
	addr, err := t.Scratch(append([]byte(path), 0))
	if err != nil {
		return err
	}
	for _, call := range markCalls(m) {
		flags := unix.FAN_MARK_ADD | on | call.flags
		if _, err := t.Syscall(unix.SYS_FANOTIFY_MARK, uint64(fd), uint64(flags), uint64(call.mask), atFdcwd, addr); err != nil {
			return fmt.Errorf("fanotify_mark(%s, %#x) on %s: %w", markFlagNames(flags), call.mask, markName(m), err)
		}
	}
	return nil
}

type markCall struct {
	flags uint
	mask  uint32
}

// markCalls are the fanotify_mark calls (their flags beyond FAN_MARK_ADD
// and what the mark is on, and their mask) that give a new mark m's masks
// and flags: the event mask, then the ignore mask (FAN_MARK_IGNORE or the
// older FAN_MARK_IGNORED_MASK, as m was made with), which carries
// FAN_MARK_IGNORED_SURV_MODIFY.
func markCalls(m *ckpt.FanotifyMark) []markCall {
	var calls []markCall
	if m.Mask != 0 {
		calls = append(calls, markCall{mask: m.Mask})
	}
	if m.IgnoredMask != 0 {
		ignore := uint(unix.FAN_MARK_IGNORED_MASK)
		if m.Flags&unix.FAN_MARK_IGNORE != 0 {
			ignore = unix.FAN_MARK_IGNORE
		}
		calls = append(calls, markCall{flags: ignore | uint(m.Flags)&unix.FAN_MARK_IGNORED_SURV_MODIFY, mask: m.IgnoredMask})
	}
	return calls
}

func markName(m *ckpt.FanotifyMark) string {
	if m.Path == "" {
		return fmt.Sprintf("inode %d", m.Inode)
	}
	return m.Path
}

// markFlagNames names fanotify_mark flags for messages.
func markFlagNames(flags uint) string {
	names := []struct {
		bit  uint
		name string
	}{
		{unix.FAN_MARK_ADD, "ADD"}, {unix.FAN_MARK_DONT_FOLLOW, "DONT_FOLLOW"}, {unix.FAN_MARK_MOUNT, "MOUNT"},
		{unix.FAN_MARK_FILESYSTEM, "FILESYSTEM"}, {unix.FAN_MARK_EVICTABLE, "EVICTABLE"},
		{unix.FAN_MARK_IGNORE, "IGNORE"}, {unix.FAN_MARK_IGNORED_MASK, "IGNORED_MASK"},
		{unix.FAN_MARK_IGNORED_SURV_MODIFY, "IGNORED_SURV_MODIFY"},
	}
	var out []string
	for _, n := range names {
		if flags&n.bit != 0 {
			out = append(out, "FAN_MARK_"+n.name)
		}
	}
	return strings.Join(out, "|")
}

// atFdcwd is AT_FDCWD as a system call argument.
var atFdcwd = func() uint64 { v := int64(unix.AT_FDCWD); return uint64(v) }()

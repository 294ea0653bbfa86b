package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// MaxDeletedFileSize bounds the data stored for a deleted-but-open file
// (its holes not counted), or a memfd.
const MaxDeletedFileSize = 1 << 30

var regularKind = &Kind{
	Files: []string{ckpt.FileRegular},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFREG
	},
	Dump:    dumpRegular,
	Restore: restoreRegular,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeGhost: restoreGhost},
}

func dumpRegular(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	path := fd.Link.Path
	f := ckpt.File{Kind: ckpt.FileRegular, Path: path, Flags: int(fd.Info.Flags), Pos: fd.Info.Pos, Mode: fd.Stat.Mode, Identity: identityOf(path, &fd.Stat)}
	if c.MountNamespaceOf != nil && fd.Info.MntID != 0 {
		f.MountNamespace, _ = c.MountNamespaceOf(fd.Pid, fd.Info.MntID)
	}
	ref := c.W.NewObjref()
	if pid, ok := deadProcPid(fd); ok {
		f.DeadPid = pid
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	if obj, ok := c.Memfds[inodeKey{fd.Stat.Dev, fd.Stat.Ino}]; ok && isGhost(fd) {
		// An unlinked file a mapping holds (or shared anonymous memory,
		// opened through /proc/PID/map_files): its contents are the
		// mapping's object already, which the fd shares again, so that
		// writes through it still show in the mapping.
		f.Kind = ckpt.FileMemfd
		return ref, c.WriteFile(fd, ref, []ckpt.Objref{obj}, &f)
	}
	deps, err := dumpRemovedName(c, fd, &f, true)
	if err != nil {
		return 0, err
	}
	return ref, c.WriteFile(fd, ref, deps, &f)
}

// dumpRemovedName records how the file of fd is found again when the name
// it was opened by is gone: through its ghost record, which the file record
// then depends on, if its last name was removed; by file handle if another
// link stays (byHandle; a kind that cannot reopen so refuses it).
func dumpRemovedName(c *DumpContext, fd *Fd, f *ckpt.File, byHandle bool) ([]ckpt.Objref, error) {
	switch {
	case isGhost(fd):
		f.Deleted = true
		if point, ok := mountPointOf(fd); ok && len(c.mountsOf(fd)) > 0 {
			// On a mount of a namespace the restart makes again.
			f.MountPoint = point
		}
		ghost, err := dumpGhost(c, fd)
		if err != nil {
			return nil, err
		}
		return []ckpt.Objref{ghost}, nil
	case fd.Link.Deleted && !byHandle:
		return nil, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("%s %s, removed but linked elsewhere", f.Kind, fd.Link.Path)}
	case fd.Link.Deleted:
		h, err := fileHandle(fd)
		if err != nil {
			return nil, err
		}
		f.Handle = h
		linkedName(c, fd, f)
	}
	return nil, nil
}

func restoreRegular(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.DeadPid != 0 {
		fd, err := openDeadProc(c, t, f, reopenFlags(f.Flags))
		if err != nil {
			return -1, err
		}
		return fd, seek(t, fd, f.Pos)
	}
	if f.Deleted {
		fd, err := openGhostOn(c, t, rec, f, reopenFlags(f.Flags))
		if err != nil {
			return -1, fmt.Errorf("deleted %s: %w", f.Path, err)
		}
		return fd, seek(t, fd, f.Pos)
	}
	if fd, ok, err := openProcLater(c, t, rec, f, reopenFlags(f.Flags)); ok {
		return fd, err
	}
	if f.Handle != nil {
		fd, err := openByHandle(c, t, f)
		if errors.Is(err, unix.ESTALE) && f.Linked != "" {
			return openLinked(c, t, f)
		}
		if err != nil {
			return -1, fmt.Errorf("%s, removed but linked elsewhere: %w", f.Path, err)
		}
		return fd, seek(t, fd, f.Pos)
	}
	if f.MountNamespace != 0 {
		if _, made := c.pathIn(t, f.MountNamespace, f.Path); !made {
			// The namespace of a process made after this one.
			return openLater(c, t, rec.Objref, func(t Target) (int, error) { return openInMountNamespace(c, t, f) })
		}
		return openInMountNamespace(c, t, f)
	}
	var st unix.Stat_t
	if err := unix.Stat(c.hostPath(t, f.Path), &st); err != nil {
		return -1, fmt.Errorf("%s: %w", f.Path, err)
	}
	switch {
	case c.replaced(t, &st, f.Identity):
		t.Warn("file was replaced since the checkpoint; opening the new one", "path", f.Path)
	case st.Size != f.Identity.Size && f.Flags&unix.O_APPEND != 0:
		// A log that grew: it goes on appending.
	case st.Size != f.Identity.Size:
		t.Warn("file changed size since the checkpoint; restored at its old offset", "path", f.Path, "size", f.Identity.Size, "now", st.Size, "offset", f.Pos)
	}
	fd, err := t.Open(f.Path, reopenFlags(f.Flags), 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", f.Path, err)
	}
	if err := seek(t, fd, f.Pos); err != nil {
		return -1, err
	}
	return fd, nil
}

// openInMountNamespace opens f, a file opened in another mount
// namespace than t's, in that one, by crsub, and hands it to t: the file
// is on the mount it was on.
func openInMountNamespace(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	host, ok := c.pathIn(t, f.MountNamespace, f.Path)
	if !ok || c.Take == nil {
		return -1, fmt.Errorf("%s, opened in mount namespace %d: that namespace is not made again here", f.Path, f.MountNamespace)
	}
	local, err := os.OpenFile(host, reopenFlags(f.Flags)|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s in mount namespace %d: %w", f.Path, f.MountNamespace, err)
	}
	defer local.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(local.Fd()), &st); err != nil {
		return -1, os.NewSyscallError("fstat", err)
	}
	if st.Size != f.Identity.Size && f.Flags&unix.O_APPEND == 0 {
		t.Warn("file changed size since the checkpoint; restored at its old offset", "path", f.Path, "size", f.Identity.Size, "now", st.Size, "offset", f.Pos)
	}
	fd, err := c.Take(int(local.Fd()), t)
	if err != nil {
		return -1, err
	}
	return fd, seek(t, fd, f.Pos)
}

// openProcLater opens, once every task exists, a file or directory of
// /proc/PID (a child's stat, its fd directory) where PID is a process of the
// image: under the pid crsub sees it by then (a new one in a new pid
// namespace) on crsub's /proc, or as the target names it on a proc its
// mount namespace made anew showing a pid namespace of the image, where
// the tree's processes have their pids again. ok is false for any other
// file.
func openProcLater(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File, flags int) (_ int, ok bool, _ error) {
	pid, rest, ok := procPidPath(f.Path)
	if !ok {
		return -1, false, nil
	}
	inTree := c.InTree != nil && c.InTree(pid)
	path := func() string { return f.Path }
	hostPid := func() string {
		host := pid
		if c.HostPid != nil {
			host = c.HostPid(pid)
		}
		return "/proc/" + strconv.Itoa(host) + rest
	}
	switch pidns, made := c.procPidNamespace(t, f.Identity.Dev); {
	case made && pidns != nil:
	case (made || onProcfs(f)) && inTree:
		path = hostPid
	default:
		return -1, false, nil
	}
	fd, err := openLater(c, t, rec.Objref, func(t Target) (int, error) {
		path := path()
		fd, err := t.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, seek(t, fd, f.Pos)
	})
	return fd, true, err
}

// procPidPath splits a path of procfs, /proc/PID/REST, into the pid and
// REST ("" or starting with "/").
func procPidPath(path string) (pid int, rest string, ok bool) {
	tail, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0, "", false
	}
	num, rest, _ := strings.Cut(tail, "/")
	if num == "" || strings.TrimLeft(num, "0123456789") != "" || num[0] == '0' {
		return 0, "", false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	if rest != "" || strings.HasSuffix(tail, "/") {
		rest = "/" + rest
	}
	return pid, rest, true
}

// onProcfs says whether f was a file of the procfs mounted at /proc.
func onProcfs(f *ckpt.File) bool {
	var st unix.Stat_t
	var fs unix.Statfs_t
	return unix.Stat("/proc", &st) == nil && st.Dev == f.Identity.Dev &&
		unix.Statfs("/proc", &fs) == nil && fs.Type == unix.PROC_SUPER_MAGIC
}

// fileHandle is the handle of the file fd is open on.
func fileHandle(fd *Fd) (*ckpt.FileHandle, error) {
	h, _, err := unix.NameToHandleAt(int(fd.Copy.Fd()), "", unix.AT_EMPTY_PATH)
	if err != nil {
		return nil, fmt.Errorf("%s was removed and is linked elsewhere: its file handle: %w", fd.Link.Path, err)
	}
	return &ckpt.FileHandle{Type: h.Type(), Bytes: h.Bytes()}, nil
}

// openByHandle opens f's file by its handle, on the filesystem of the
// nearest directory above where it was, and checks it is the same file.
func openByHandle(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	dir := filepath.Dir(f.Path)
	mnt, err := os.OpenFile(c.hostPath(t, dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for err != nil && dir != "/" {
		dir = filepath.Dir(dir)
		mnt, err = os.OpenFile(c.hostPath(t, dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, err
	}
	defer mnt.Close()
	h := unix.NewFileHandle(f.Handle.Type, f.Handle.Bytes)
	local, err := unix.OpenByHandleAt(int(mnt.Fd()), h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_by_handle_at on %s: %w", dir, err)
	}
	defer unix.Close(local)
	var st unix.Stat_t
	if err := unix.Fstat(local, &st); err != nil {
		return -1, err
	}
	if st.Dev != f.Identity.Dev || st.Ino != f.Identity.Inode {
		return -1, fmt.Errorf("its handle opens inode %d on %#x, not %d on %#x", st.Ino, st.Dev, f.Identity.Inode, f.Identity.Dev)
	}
	return c.reopen(t, local, reopenFlags(f.Flags))
}

var directoryKind = &Kind{
	Files: []string{ckpt.FileDirectory},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFDIR
	},
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		f := ckpt.File{Kind: ckpt.FileDirectory, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Pos: fd.Info.Pos, Mode: fd.Stat.Mode, Identity: identityOf(fd.Link.Path, &fd.Stat)}
		// A removed directory is empty (rmdir wants it so): an empty one,
		// removed again, is all it takes.
		f.Deleted = fd.Link.Deleted
		if f.Deleted {
			f.UID, f.GID = fd.Stat.Uid, fd.Stat.Gid
		}
		if pid, ok := deadProcPid(fd); ok {
			f.DeadPid, f.Deleted = pid, false
		}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		if f.DeadPid != 0 {
			fd, err := openDeadProc(c, t, f, reopenFlags(f.Flags)|unix.O_DIRECTORY)
			if err != nil {
				return -1, err
			}
			return fd, seek(t, fd, f.Pos)
		}
		if fd, ok, err := openProcLater(c, t, rec, f, reopenFlags(f.Flags)|unix.O_DIRECTORY); ok && !f.Deleted {
			return fd, err
		}
		path := f.Path
		if f.Deleted {
			var err error
			if path, err = c.RemovedDir(t, f.Path, f.Identity.Dev, f.Identity.Inode, f.Mode, int(f.UID), int(f.GID)); err != nil {
				return -1, err
			}
		}
		fd, err := t.Open(path, reopenFlags(f.Flags)|unix.O_DIRECTORY, 0)
		if err != nil {
			return -1, fmt.Errorf("open directory %s: %w", f.Path, err)
		}
		if f.Deleted {
			return fd, nil // empty: no position to keep
		}
		return fd, seek(t, fd, f.Pos)
	},
}

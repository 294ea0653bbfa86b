package files

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A symbolic link itself, opened with O_PATH|O_NOFOLLOW (a program that
// keeps a handle on the link, not on what it points to), is opened again by
// path; one whose name was removed is made again beside its old name,
// opened and removed, with what it pointed to.
var symlinkKind = &Kind{
	Files: []string{ckpt.FileSymlink},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFLNK
	},
	Dump:    dumpSymlink,
	Restore: restoreSymlink,
}

func dumpSymlink(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(fd.Copy.Fd()), "", buf)
	if err != nil {
		return 0, fmt.Errorf("symlink %s: %w", fd.Link.Path, os.NewSyscallError("readlinkat", err))
	}
	f := ckpt.File{Kind: ckpt.FileSymlink, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode,
		Identity: identityOf(fd.Link.Path, &fd.Stat), Deleted: fd.Link.Deleted, SymlinkTarget: string(buf[:n])}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreSymlink(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	flags := reopenFlags(f.Flags) | unix.O_NOFOLLOW | unix.O_PATH
	if !f.Deleted {
		var st unix.Stat_t
		if err := unix.Lstat(f.Path, &st); err != nil {
			return -1, fmt.Errorf("symlink %s: %w", f.Path, os.NewSyscallError("lstat", err))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return -1, fmt.Errorf("%s is no longer a symlink", f.Path)
		}
		if st.Ino != f.Identity.Inode || st.Dev != f.Identity.Dev {
			t.Warn("symlink was replaced since the checkpoint; opening the new one", "path", f.Path)
		}
		fd, err := t.Open(f.Path, flags, 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", f.Path, err)
		}
		return fd, nil
	}
	// Removed: made again under a name of its own beside the old one for
	// the moment it takes to open it.
	tmp := filepath.Join(filepath.Dir(f.Path), fmt.Sprintf(".%s.crsub-%d-%d", filepath.Base(f.Path), f.Identity.Inode, os.Getpid()))
	if err := unix.Symlink(f.SymlinkTarget, tmp); err != nil {
		return -1, fmt.Errorf("removed symlink %s: making it again: %w", f.Path, os.NewSyscallError("symlink", err))
	}
	defer os.Remove(tmp)
	fd, err := t.Open(tmp, flags, 0)
	if err != nil {
		return -1, fmt.Errorf("removed symlink %s: %w", f.Path, err)
	}
	return fd, nil
}

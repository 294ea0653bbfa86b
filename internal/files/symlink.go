package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A description of a symbolic link itself (open with O_PATH|O_NOFOLLOW:
// the only way to hold one) is reopened the same way by path, or, once the
// link was removed, on its ghost (a link with the same target, made again).
var symlinkKind = &Kind{
	Files: []string{ckpt.FileSymlink},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFLNK
	},
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		f := ckpt.File{Kind: ckpt.FileSymlink, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: identityOf(fd.Link.Path, &fd.Stat)}
		deps, err := dumpRemovedName(c, fd, &f, true)
		if err != nil {
			return 0, err
		}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, deps, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		flags := reopenFlags(f.Flags) | unix.O_PATH | unix.O_NOFOLLOW
		switch {
		case f.Deleted:
			for _, d := range rec.Deps {
				if name, ok := c.ghostNames[d]; ok {
					fd, err := t.Open(name, flags, 0)
					if err != nil {
						return -1, fmt.Errorf("removed symbolic link %s, made again: open %s: %w", f.Path, name, err)
					}
					return fd, nil
				}
			}
			fd, err := openGhost(c, t, rec, flags)
			if err != nil {
				return -1, fmt.Errorf("removed symbolic link %s: %w", f.Path, err)
			}
			return fd, nil
		case f.Handle != nil:
			fd, err := openByHandle(c, t, f)
			if err != nil {
				return -1, fmt.Errorf("symbolic link %s, removed but linked elsewhere: %w", f.Path, err)
			}
			return fd, nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(c.hostPath(t, f.Path), &st); err != nil {
			return -1, fmt.Errorf("%s: %w", f.Path, err)
		}
		if fileType(&st) != unix.S_IFLNK {
			return -1, fmt.Errorf("%s is no longer a symbolic link", f.Path)
		}
		if c.replaced(t, &st, f.Identity) {
			t.Warn("symbolic link was replaced since the checkpoint; opening the new one", "path", f.Path)
		}
		fd, err := t.Open(f.Path, flags, 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", f.Path, err)
		}
		return fd, nil
	},
}

// readlinkFd reads the target of the symbolic link f is open on (O_PATH).
func readlinkFd(f *os.File) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(f.Fd()), "", buf)
		if err != nil {
			return "", os.NewSyscallError("readlinkat", err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

package files

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// MaxDeletedFileSize bounds the contents stored for a deleted-but-open file.
const MaxDeletedFileSize = 1 << 30

var regularKind = &Kind{
	Files: []string{ckpt.FileRegular},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFREG
	},
	Dump:    dumpRegular,
	Restore: restoreRegular,
}

func dumpRegular(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	path := fd.Link.Path
	f := ckpt.File{Kind: ckpt.FileRegular, Path: path, Flags: int(fd.Info.Flags), Pos: fd.Info.Pos, Mode: fd.Stat.Mode, Identity: identityOf(path, &fd.Stat)}
	ref := c.W.NewObjref()
	if !(fd.Link.Deleted && fd.Stat.Nlink == 0) {
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	f.Deleted = true
	if fd.Stat.Size > MaxDeletedFileSize {
		return 0, fmt.Errorf("deleted file %s holds %d bytes, more than the %d crsub stores", path, fd.Stat.Size, MaxDeletedFileSize)
	}
	return ref, c.WriteFileWithPayload(fd, ref, nil, &f, fd.Stat.Size, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(fd.Copy, 0, fd.Stat.Size))
		return err
	})
}

func restoreRegular(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Deleted {
		return restoreDeleted(t, rec, f)
	}
	var st unix.Stat_t
	if err := unix.Stat(f.Path, &st); err != nil {
		return -1, fmt.Errorf("%s: %w", f.Path, err)
	}
	switch {
	case st.Ino != f.Identity.Inode || st.Dev != f.Identity.Dev:
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

// restoreDeleted recreates a deleted file's contents in an unnamed file
// (O_TMPFILE) in the same directory when it still exists, so it stays on the
// same filesystem, and lets the target open it through /proc.
func restoreDeleted(t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var tmp int
	var err error
	for _, dir := range []string{filepath.Dir(f.Path), os.TempDir()} {
		tmp, err = unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, f.Mode&0o7777)
		if err == nil {
			break
		}
	}
	if err != nil {
		return -1, fmt.Errorf("creating a file for the contents of deleted %s: %w", f.Path, err)
	}
	file := os.NewFile(uintptr(tmp), f.Path+" (deleted)")
	defer file.Close()
	if _, err := io.Copy(file, rec.Payload()); err != nil {
		return -1, fmt.Errorf("contents of deleted %s: %w", f.Path, err)
	}
	fd, err := t.Open(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), tmp), reopenFlags(f.Flags), 0)
	if err != nil {
		return -1, fmt.Errorf("reopening the contents of deleted %s: %w", f.Path, err)
	}
	if err := seek(t, fd, f.Pos); err != nil {
		return -1, err
	}
	return fd, nil
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
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		path := f.Path
		if f.Deleted {
			ghost, err := GhostDir(f.Path)
			if err != nil {
				return -1, err
			}
			defer os.Remove(ghost)
			path = ghost
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

// GhostDir makes a new, empty directory standing for the removed directory
// path: beside where it was, or in the temporary directory if its parent is
// gone too. The caller opens it where it is needed and removes it.
func GhostDir(path string) (string, error) {
	parent := filepath.Dir(path)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		parent = ""
	}
	ghost, err := os.MkdirTemp(parent, "."+filepath.Base(path)+".crsub-deleted-")
	if err != nil {
		return "", fmt.Errorf("recreating removed directory %s: %w", path, err)
	}
	return ghost, nil
}

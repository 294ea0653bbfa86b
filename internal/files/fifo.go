package files

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A named pipe is reopened by path, or made again if its name was removed
// (a ghost). The bytes buffered in it belong to the FIFO, not to one
// opener: they are a FIFO object record, which every description of it
// depends on, as a pipe's.
var fifoKind = &Kind{
	Files: []string{ckpt.FileFIFO},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFIFO
	},
	Dump:    dumpFIFO,
	Restore: restoreFIFO,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeFIFO: restoreFIFOObject},
}

func dumpFIFO(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	f := ckpt.File{Kind: ckpt.FileFIFO, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: identityOf(fd.Link.Path, &fd.Stat)}
	deps, err := dumpRemovedName(c, fd, &f, false)
	if err != nil {
		return 0, err
	}
	obj, err := dumpFIFOObject(c, fd, deps)
	if err != nil {
		return 0, err
	}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, append(deps, obj), &f)
}

// dumpFIFOObject writes the FIFO fd is open on with its buffered bytes,
// once per FIFO, and returns its objref.
func dumpFIFOObject(c *DumpContext, fd *Fd, deps []ckpt.Objref) (ckpt.Objref, error) {
	key := inodeKey{fd.Stat.Dev, fd.Stat.Ino}
	if ref, ok := c.fifos[key]; ok {
		return ref, nil
	}
	// Peek through a fresh read end: opening a FIFO for reading without
	// blocking always succeeds and takes nothing from it.
	r, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", fd.Pid, fd.Num), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("a read end for FIFO %s: %w", fd.Link.Path, err)
	}
	defer r.Close()
	rfd, err := unix.FcntlInt(r.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	owned := sys.NewFD(rfd)
	defer owned.Close()
	size, err := unix.FcntlInt(uintptr(rfd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	data, err := sys.PeekPipe(owned, size)
	if err != nil {
		return 0, fmt.Errorf("reading FIFO %s's buffer: %w", fd.Link.Path, err)
	}
	ref := c.W.NewObjref()
	o := ckpt.FIFO{Path: fd.Link.Path, Inode: fd.Stat.Ino, Size: size}
	if err := c.W.WriteWithPayload(ckpt.TypeFIFO, ref, deps, &o, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return 0, err
	}
	if c.fifos == nil {
		c.fifos = map[inodeKey]ckpt.Objref{}
	}
	c.fifos[key] = ref
	return ref, nil
}

// fifoPath is where crsub and the target open a FIFO: its path, or its
// ghost through crsub's fd.
func fifoPath(c *RestoreContext, deps []ckpt.Objref, path string, self string) (string, error) {
	for _, d := range deps {
		if g := c.ghosts[d]; g != nil {
			return fmt.Sprintf("/proc/%s/fd/%d", self, g.Fd()), nil
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("FIFO %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return "", fmt.Errorf("%s is no longer a FIFO", path)
	}
	return path, nil
}

// ghostOf is crsub's fd on the ghost among deps, if any.
func ghostOf(c *RestoreContext, deps []ckpt.Objref) *os.File {
	for _, d := range deps {
		if g := c.ghosts[d]; g != nil {
			return g
		}
	}
	return nil
}

// restoreFIFOObject opens the FIFO in crsub, read-write so that it has both
// ends, and refills it; crsub holds it until every fd on it is open.
func restoreFIFOObject(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var o ckpt.FIFO
	if err := rec.Decode(&o); err != nil {
		return err
	}
	path, err := fifoPath(c, rec.Deps, c.hostPath(t, o.Path), "self")
	if err != nil {
		return err
	}
	keeper, err := os.OpenFile(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open FIFO %s: %w", o.Path, err)
	}
	if c.fifos == nil {
		c.fifos = map[ckpt.Objref]*os.File{}
	}
	c.fifos[rec.Objref] = keeper
	if o.Size > 0 {
		if _, err := unix.FcntlInt(keeper.Fd(), unix.F_SETPIPE_SZ, o.Size); err != nil {
			t.Warn("cannot restore a FIFO's size", "path", o.Path, "size", o.Size, "err", err)
		}
	}
	if _, err := io.Copy(keeper, rec.Payload()); err != nil {
		return fmt.Errorf("refilling FIFO %s: %w", o.Path, err)
	}
	return nil
}

func restoreFIFO(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	// crsub holds both ends (restoreFIFOObject) until every fd is open:
	// opening one end neither blocks nor fails.
	var fd int
	var err error
	if g := ghostOf(c, rec.Deps); g != nil {
		fd, err = c.reopen(t, int(g.Fd()), reopenFlags(f.Flags)|unix.O_NONBLOCK)
	} else if _, err = fifoPath(c, nil, c.hostPath(t, f.Path), ""); err == nil {
		fd, err = t.Open(f.Path, reopenFlags(f.Flags)|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("open FIFO %s: %w", f.Path, err)
	}
	if f.Flags&unix.O_NONBLOCK == 0 {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(f.Flags&unix.O_APPEND)); err != nil {
			return -1, fmt.Errorf("fcntl F_SETFL: %w", err)
		}
	}
	return fd, nil
}

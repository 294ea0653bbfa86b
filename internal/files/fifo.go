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

// A named pipe is reopened by path. The bytes buffered in it belong to the
// FIFO, not to one opener, so they travel with the first file record of
// that FIFO in the image.
var fifoKind = &Kind{
	Files: []string{ckpt.FileFIFO},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFIFO
	},
	Dump:    dumpFIFO,
	Restore: restoreFIFO,
}

func dumpFIFO(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	if fd.Link.Deleted {
		return 0, &UnsupportedError{Fd: fd.Num, What: "deleted FIFO " + fd.Link.Path}
	}
	f := ckpt.File{Kind: ckpt.FileFIFO, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: identityOf(fd.Link.Path, &fd.Stat)}
	ref := c.W.NewObjref()
	if c.Fifos == nil {
		c.Fifos = map[uint64]bool{}
	}
	if c.Fifos[fd.Stat.Ino] {
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	c.Fifos[fd.Stat.Ino] = true
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
	return ref, c.WriteFileWithPayload(fd, ref, nil, &f, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func restoreFIFO(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(f.Path, &st); err != nil {
		return -1, fmt.Errorf("FIFO %s: %w", f.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return -1, fmt.Errorf("%s is no longer a FIFO", f.Path)
	}
	// A read-write, non-blocking opener first: opening the FIFO for one
	// direction would otherwise block, or fail, without a peer.
	keeper, err := t.Open(f.Path, unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open FIFO %s: %w", f.Path, err)
	}
	if rec.PayloadLen > 0 {
		w, err := t.Copy(keeper)
		if err != nil {
			return -1, err
		}
		_, err = io.Copy(w, rec.Payload())
		w.Close()
		if err != nil {
			return -1, fmt.Errorf("refilling FIFO %s: %w", f.Path, err)
		}
	}
	fd := keeper
	if f.Flags&unix.O_ACCMODE != unix.O_RDWR {
		if fd, err = t.Open(f.Path, reopenFlags(f.Flags)|unix.O_NONBLOCK, 0); err != nil {
			return -1, fmt.Errorf("open FIFO %s: %w", f.Path, err)
		}
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(keeper)); err != nil {
			return -1, err
		}
	}
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(f.Flags&unix.O_NONBLOCK)); err != nil {
		return -1, fmt.Errorf("fcntl F_SETFL: %w", err)
	}
	return fd, nil
}

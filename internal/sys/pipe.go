package sys

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// Tee duplicates up to n bytes from pipe in to pipe out without consuming
// them from in (tee(2)). It returns 0 at end of input.
func Tee(in, out *FD, n int, flags int) (int64, error) {
	c, err := retry(func() (int64, error) {
		if err := fault.Call("tee"); err != nil {
			return 0, err
		}
		return unix.Tee(in.Int(), out.Int(), n, flags)
	})
	if err != nil {
		return 0, os.NewSyscallError("tee", err)
	}
	return c, nil
}

// Splice moves up to n bytes between in and out, one of which must be a
// pipe (splice(2)). A nil offset uses and updates the file position.
func Splice(in *FD, inOff *int64, out *FD, outOff *int64, n int, flags int) (int64, error) {
	c, err := retry(func() (int64, error) {
		if err := fault.Call("splice"); err != nil {
			return 0, err
		}
		return unix.Splice(in.Int(), inOff, out.Int(), outOff, n, flags)
	})
	if err != nil {
		return 0, os.NewSyscallError("splice", err)
	}
	return c, nil
}

// CopyFileRange copies up to n bytes between two files inside the kernel
// (copy_file_range(2)), useful for dumping file contents such as a deleted
// file or a memfd reached through a stolen fd.
func CopyFileRange(in *FD, inOff *int64, out *FD, outOff *int64, n int) (int, error) {
	c, err := retry(func() (int, error) {
		if err := fault.Call("copy_file_range"); err != nil {
			return 0, err
		}
		return unix.CopyFileRange(in.Int(), inOff, out.Int(), outOff, n, 0)
	})
	if err != nil {
		return 0, os.NewSyscallError("copy_file_range", err)
	}
	return c, nil
}

// PipeSize returns the capacity of a pipe in bytes (F_GETPIPE_SZ).
func PipeSize(fd *FD) (int, error) {
	n, err := retry(func() (int, error) { return unix.FcntlInt(uintptr(fd.Int()), unix.F_GETPIPE_SZ, 0) })
	if err != nil {
		return 0, os.NewSyscallError("fcntl(F_GETPIPE_SZ)", err)
	}
	return n, nil
}

// SetPipeSize sets the capacity of a pipe (F_SETPIPE_SZ) and returns the size
// the kernel chose: n rounded up to a power-of-two number of pages. Without
// CAP_SYS_RESOURCE, n above /proc/sys/fs/pipe-max-size gives EPERM.
func SetPipeSize(fd *FD, n int) (int, error) {
	got, err := retry(func() (int, error) { return unix.FcntlInt(uintptr(fd.Int()), unix.F_SETPIPE_SZ, n) })
	if err != nil {
		return 0, os.NewSyscallError("fcntl(F_SETPIPE_SZ)", err)
	}
	return got, nil
}

// fionread is FIONREAD, which Linux defines as TIOCINQ on every architecture.
const fionread = unix.TIOCINQ

// FionRead returns the number of bytes waiting to be read from fd (a pipe,
// socket or tty).
func FionRead(fd *FD) (int, error) {
	n, err := retry(func() (int, error) { return unix.IoctlGetInt(fd.Int(), fionread) })
	if err != nil {
		return 0, os.NewSyscallError("ioctl(FIONREAD)", err)
	}
	return n, nil
}

// PeekPipe returns a copy of the bytes buffered in the pipe whose read end
// is fd, leaving them in place. It tees the buffer into a private pipe and
// reads that. Because tee copies whole pipe buffers and cannot skip, the
// private pipe is first given as many slots as the source (its
// F_GETPIPE_SZ); that needs the source size to be within pipe-max-size for
// processes without CAP_SYS_RESOURCE. It fails, rather than truncating, if
// more than max bytes are queued. The pipe's writers and readers must be
// stopped, or the result may be stale by the time it returns.
func PeekPipe(fd *FD, max int) ([]byte, error) {
	// F_GETPIPE_SZ first: it fails on anything but a pipe, whereas FIONREAD
	// would happily report a regular file's remaining length.
	srcSize, err := PipeSize(fd)
	if err != nil {
		return nil, fmt.Errorf("peek pipe: %w", err)
	}
	queued, err := FionRead(fd)
	if err != nil {
		return nil, fmt.Errorf("peek pipe: %w", err)
	}
	if queued == 0 {
		return []byte{}, nil
	}
	if queued > max {
		return nil, fmt.Errorf("peek pipe: %d bytes queued, more than the limit of %d", queued, max)
	}

	var p [2]int
	if err := retryErr(func() error { return unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK) }); err != nil {
		return nil, fmt.Errorf("peek pipe: %w", os.NewSyscallError("pipe2", err))
	}
	r, w := NewFD(p[0]), NewFD(p[1])
	defer r.Close()
	defer w.Close()
	tmpSize, err := PipeSize(w)
	if err != nil {
		return nil, fmt.Errorf("peek pipe: private pipe: %w", err)
	}
	if tmpSize < srcSize {
		if _, err := SetPipeSize(w, srcSize); err != nil {
			return nil, fmt.Errorf("peek pipe: growing private pipe to the source's %d bytes: %w", srcSize, err)
		}
	}

	n, err := Tee(fd, w, queued, unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("peek pipe: %w", err)
	}
	if int(n) != queued {
		return nil, fmt.Errorf("peek pipe: tee copied %d of %d queued bytes", n, queued)
	}
	buf := make([]byte, queued)
	for got := 0; got < queued; {
		m, err := retry(func() (int, error) { return unix.Read(r.Int(), buf[got:]) })
		if err != nil {
			return nil, fmt.Errorf("peek pipe: after %d of %d bytes: %w", got, queued, os.NewSyscallError("read", err))
		}
		if m == 0 {
			return nil, fmt.Errorf("peek pipe: private pipe ended after %d of %d bytes", got, queued)
		}
		got += m
	}
	return buf, nil
}

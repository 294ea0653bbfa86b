package sys

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// MemfdCreate makes an anonymous memory file (memfd_create(2)), close-on-exec.
func MemfdCreate(name string, flags int) (*FD, error) {
	fd, err := retry(func() (int, error) {
		if err := fault.Call("memfd_create"); err != nil {
			return -1, err
		}
		return unix.MemfdCreate(name, flags|unix.MFD_CLOEXEC)
	})
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return NewFD(fd), nil
}

// Fallocate allocates (mode 0) or punches out (FALLOC_FL_PUNCH_HOLE with
// FALLOC_FL_KEEP_SIZE) n bytes at off of fd (fallocate(2)).
func Fallocate(fd int, mode uint32, off, n int64) error {
	err := retryErr(func() error {
		if err := fault.Call("fallocate"); err != nil {
			return err
		}
		return unix.Fallocate(fd, mode, off, n)
	})
	if err != nil {
		return os.NewSyscallError("fallocate", err)
	}
	return nil
}

// Sendfile copies up to n bytes at *off of in to out inside the kernel
// (sendfile(2)), advancing *off. It returns 0 at in's end.
func Sendfile(out, in int, off *int64, n int) (int, error) {
	c, err := retry(func() (int, error) {
		if err := fault.Call("sendfile"); err != nil {
			return 0, err
		}
		return unix.Sendfile(out, in, off, n)
	})
	if err != nil {
		return 0, os.NewSyscallError("sendfile", err)
	}
	return c, nil
}

// PwritevAll writes bufs one after another at off of fd (pwritev(2)),
// going on after a short write until all are written.
func PwritevAll(fd int, bufs [][]byte, off int64) error {
	for len(bufs) > 0 {
		n, err := retry(func() (int, error) {
			if err := fault.Call("pwritev"); err != nil {
				return 0, err
			}
			return unix.Pwritev(fd, bufs, off)
		})
		if err != nil {
			return os.NewSyscallError("pwritev", err)
		}
		if n == 0 {
			return os.NewSyscallError("pwritev", unix.EIO)
		}
		off += int64(n)
		for n > 0 {
			k := min(n, len(bufs[0]))
			bufs[0], n = bufs[0][k:], n-k
			if len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
		}
	}
	return nil
}

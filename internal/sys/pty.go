package sys

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPtyIndex opens, through ptmx (a name under dirfd: the ptmx of a
// devpts, or its directory's), the master of a new pty numbered n. devpts
// gives a new pair the lowest number free: those below are taken until n
// comes, then let go. An error if n is taken or another number comes.
func OpenPtyIndex(dirfd int, ptmx string, n int) (*os.File, error) {
	var below []*os.File
	defer func() {
		for _, f := range below {
			f.Close()
		}
	}()
	for {
		fd, err := openat(dirfd, ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: ptmx, Err: err}
		}
		f := os.NewFile(uintptr(fd), ptmx)
		got, err := ioctlGetUint32(fd, unix.TIOCGPTN)
		if err != nil {
			f.Close()
			return nil, os.NewSyscallError("ioctl(TIOCGPTN)", err)
		}
		switch {
		case int(got) == n:
			return f, nil
		case int(got) > n || len(below) > n:
			f.Close()
			return nil, fmt.Errorf("pty %d: a new pty is %d", n, got)
		}
		below = append(below, f)
	}
}

func openat(dirfd int, path string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func ioctlGetUint32(fd int, req uint) (uint32, error) {
	for {
		v, err := unix.IoctlGetUint32(fd, req)
		if err != unix.EINTR {
			return v, err
		}
	}
}

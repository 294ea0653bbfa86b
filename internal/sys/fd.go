package sys

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FD owns one file descriptor. There is deliberately no finalizer: an fd
// stolen from a frozen process must be closed at a known point (for example
// before the process is resumed or killed), so callers must Close every FD
// they are given, typically with defer. An FD is not safe for concurrent use
// while it is being closed.
type FD struct {
	raw int // -1 once closed or handed off
}

// NewFD takes ownership of fd. A negative fd gives an FD that is already
// closed.
func NewFD(fd int) *FD {
	if fd < 0 {
		fd = -1
	}
	return &FD{raw: fd}
}

// Int returns the descriptor number, or -1 if fd is nil or closed. The number
// stays owned by fd.
func (fd *FD) Int() int {
	if fd == nil {
		return -1
	}
	return fd.raw
}

func (fd *FD) String() string { return fmt.Sprintf("fd %d", fd.Int()) }

// Close closes the descriptor. Calling it again, or on a nil FD, does
// nothing and returns nil. EINTR is not retried: Linux always releases the
// descriptor, and retrying could close one another goroutine just opened.
func (fd *FD) Close() error {
	if fd == nil || fd.raw < 0 {
		return nil
	}
	raw := fd.raw
	fd.raw = -1
	if err := unix.Close(raw); err != nil && err != unix.EINTR {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Dup returns a new FD for the same open file, with FD_CLOEXEC set.
func (fd *FD) Dup() (*FD, error) {
	n, err := retry(func() (int, error) { return unix.FcntlInt(uintptr(fd.Int()), unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return nil, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return NewFD(n), nil
}

// File hands the descriptor over to a new *os.File, which then owns it; fd
// is left closed. It returns nil if fd was already closed.
func (fd *FD) File(name string) *os.File {
	if fd.Int() < 0 {
		return nil
	}
	raw := fd.raw
	fd.raw = -1
	return os.NewFile(uintptr(raw), name)
}

// retry repeats a system call until it stops failing with EINTR.
func retry[T any](call func() (T, error)) (T, error) {
	for {
		v, err := call()
		if err != unix.EINTR {
			return v, err
		}
	}
}

// retryErr is retry for calls that return only an error.
func retryErr(call func() error) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, call() })
	return err
}

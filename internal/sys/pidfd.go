package sys

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// PidfdOpen returns a pidfd (close-on-exec) referring to process pid.
func PidfdOpen(pid int) (*FD, error) {
	if err := fault.Call("pidfd_open"); err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	fd, err := retry(func() (int, error) { return unix.PidfdOpen(pid, 0) })
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	return NewFD(fd), nil
}

// PidfdGetfd duplicates descriptor targetfd of the process behind pidfd into
// this process. The copy shares the open file description (offset, flags)
// with the target's and has FD_CLOEXEC set. It needs ptrace access to the
// target, not a ptrace attach.
func PidfdGetfd(pidfd *FD, targetfd int) (*FD, error) {
	if err := fault.Call("pidfd_getfd"); err != nil {
		return nil, os.NewSyscallError("pidfd_getfd", err)
	}
	fd, err := retry(func() (int, error) { return unix.PidfdGetfd(pidfd.Int(), targetfd, 0) })
	if err != nil {
		return nil, os.NewSyscallError("pidfd_getfd", err)
	}
	return NewFD(fd), nil
}

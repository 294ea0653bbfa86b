package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// RunUnixGC has the kernel collect unix sockets that only messages in
// flight keep alive (a socket queued on itself, or cycles of them): their
// process's exit does not free them, and the collector runs only when
// some unix socket is released, which closing a pair made here does.
// It returns before the collection is done: it runs in a kernel worker.
func RunUnixGC() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	unix.Close(fds[0])
	unix.Close(fds[1])
	return nil
}

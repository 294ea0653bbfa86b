package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// Prlimit reads, and if newLimit is non-nil also sets, resource limit
// resource (unix.RLIMIT_*) of process pid, returning the previous value.
func Prlimit(pid, resource int, newLimit *unix.Rlimit) (unix.Rlimit, error) {
	var old unix.Rlimit
	err := retryErr(func() error { return unix.Prlimit(pid, resource, newLimit, &old) })
	if err != nil {
		return unix.Rlimit{}, os.NewSyscallError("prlimit64", err)
	}
	return old, nil
}

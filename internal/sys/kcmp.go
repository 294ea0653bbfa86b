package sys

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KcmpType selects what kcmp(2) compares. x/sys/unix has neither the
// constants nor a wrapper.
type KcmpType int

const (
	KcmpFile KcmpType = iota
	KcmpVM
	KcmpFiles
	KcmpFS
	KcmpSighand
	KcmpIO
	KcmpSysvsem
	KcmpEpollTFD
)

// Kcmp results. The kernel orders objects by their address, obfuscated with
// values fixed at boot: a total order, the same for every call, meant for
// sorting (kcmp(2)). KcmpNotEqual says no order is known.
const (
	KcmpEqual    = 0
	KcmpLess     = 1
	KcmpGreater  = 2
	KcmpNotEqual = 3
)

// Kcmp compares a kernel object of pid1 with one of pid2 (see kcmp(2)); idx1
// and idx2 are fds for KcmpFile and ignored for the whole-resource types.
func Kcmp(pid1, pid2 int, typ KcmpType, idx1, idx2 uintptr) (int, error) {
	r, err := retry(func() (int, error) {
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), idx1, idx2, 0)
		if errno != 0 {
			return 0, errno
		}
		return int(r), nil
	})
	if err != nil {
		return 0, os.NewSyscallError("kcmp", err)
	}
	return r, nil
}

// KcmpEpollSlot names a file registered with an epoll instance: the epoll fd,
// the target fd number it was registered under, and which of several
// registrations under that number (normally 0).
type KcmpEpollSlot struct {
	Efd  uint32
	Tfd  uint32
	Toff uint32
}

// KcmpEpoll reports whether fd1 of pid1 is the same file as the one
// registered in pid2's epoll slot; this identifies epoll targets whose
// registered fd number has since been closed or reused.
func KcmpEpoll(pid1, pid2, fd1 int, slot KcmpEpollSlot) (int, error) {
	r, err := retry(func() (int, error) {
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(KcmpEpollTFD),
			uintptr(fd1), uintptr(unsafe.Pointer(&slot)), 0)
		if errno != 0 {
			return 0, errno
		}
		return int(r), nil
	})
	if err != nil {
		return 0, os.NewSyscallError("kcmp(KCMP_EPOLL_TFD)", err)
	}
	return r, nil
}

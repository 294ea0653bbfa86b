package preserve

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// FD_PRESERVE is the preserve-on-restart bit in the flags that [Fcntl] reports
// for F_GETFD and accepts for F_SETFD. The kernel has no such flag; the value
// sits far from FD_CLOEXEC (1) and from any bit Linux has ever defined for
// F_GETFD, so it can be OR'ed with the kernel's flags without ambiguity.
// The name mirrors unix.FD_CLOEXEC on purpose.
const FD_PRESERVE = 0x40000000

// kcmpFile is KCMP_FILE from linux/kcmp.h; x/sys/unix defines no kcmp constants.
const kcmpFile = 0

// dupFloor is the lowest number a mark's held duplicate may take. Keeping the
// duplicates high matters: a duplicate at a low number would be handed out by
// nothing else, but it would sit exactly where programs and restart engines
// dup3 substitutes, and a dup3 over it silently voids the mark.
const dupFloor = 1024

// table is the package's only state, and the OS forces it: the kernel keeps
// no spare per-fd bit, so the marks live here. Each mark holds a close-on-exec
// duplicate of the marked file; kcmp(2) against it tells whether the number
// still refers to the same open file. mu guards marks and every duplicate.
var table struct {
	mu    sync.Mutex
	marks map[int]mark
}

type mark struct {
	dup int // F_DUPFD_CLOEXEC duplicate, owned by the table
	// dev and ino identify the file at Set time, so the table never closes a
	// number it no longer owns if someone dup2'd or close()d over the duplicate.
	dev, ino uint64
}

// Set marks fd to be preserved. Marking an already marked fd is a no-op.
//
// The mark holds a close-on-exec duplicate of fd at a number of at least 1024
// (lower if RLIMIT_NOFILE is small). While the mark exists the open file
// therefore stays open: a pipe's reader or a socket's peer does not see the
// close until the table notices the number was closed, which happens on the
// next call into this package. Call [Clear] before closing a marked pipe or
// socket. Dropping a mark closes the duplicate, which like any close(2)
// releases the process's POSIX (fcntl F_SETLK) locks on that file.
func Set(fd int) error {
	table.mu.Lock()
	defer table.mu.Unlock()
	sweepLocked()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("fd %d: %w", fd, err)
	}
	if _, ok := table.marks[fd]; ok {
		return nil
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, floor())
	if err != nil {
		return fmt.Errorf("fd %d: holding a duplicate: %w", fd, err)
	}
	if same, err := sameFile(fd, dup); err != nil || !same {
		unix.Close(dup)
		if err == nil {
			err = fmt.Errorf("kcmp reports a fresh duplicate as a different file")
		}
		return fmt.Errorf("fd %d: kcmp(KCMP_FILE) unusable, marks cannot be tracked: %w", fd, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		unix.Close(dup)
		return fmt.Errorf("fd %d: %w", fd, err)
	}
	if table.marks == nil {
		table.marks = make(map[int]mark)
	}
	table.marks[fd] = mark{dup: dup, dev: st.Dev, ino: st.Ino}
	return nil
}

// Clear removes the mark on fd, if any. It never touches fd itself.
func Clear(fd int) {
	table.mu.Lock()
	defer table.mu.Unlock()
	sweepLocked()
	if m, ok := table.marks[fd]; ok {
		drop(fd, m)
	}
}

// IsSet reports whether fd is marked and still refers to the open file that
// was marked.
func IsSet(fd int) bool {
	table.mu.Lock()
	defer table.mu.Unlock()
	sweepLocked()
	_, ok := table.marks[fd]
	return ok
}

// List returns the marked fds that are still honored, in increasing order.
func List() []int {
	table.mu.Lock()
	defer table.mu.Unlock()
	sweepLocked()
	fds := make([]int, 0, len(table.marks))
	for fd := range table.marks {
		fds = append(fds, fd)
	}
	slices.Sort(fds)
	return fds
}

// Fcntl is fcntl(2) with [FD_PRESERVE] added to the fd flags. F_GETFD returns
// the kernel's flags OR'ed with FD_PRESERVE when fd is marked; F_SETFD hands
// FD_CLOEXEC (and any other bit but FD_PRESERVE) to the kernel and sets or
// clears the mark from FD_PRESERVE, so F_SETFD with 0 clears both, as with a
// real flag. Every other command goes to the kernel unchanged; arg is passed
// as an integer, so commands that take a pointer (F_GETLK, F_OFD_SETLK, ...)
// belong to unix.FcntlFlock and friends instead. Errors are the kernel's
// unix.Errno unwrapped, or Set's error if the mark cannot be made; on error
// the result is -1.
func Fcntl(fd, cmd, arg int) (int, error) {
	switch cmd {
	case unix.F_GETFD:
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return -1, err
		}
		if IsSet(fd) {
			flags |= FD_PRESERVE
		}
		return flags, nil
	case unix.F_SETFD:
		old, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return -1, err
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, arg&^FD_PRESERVE); err != nil {
			return -1, err
		}
		if arg&FD_PRESERVE == 0 {
			Clear(fd)
			return 0, nil
		}
		if err := Set(fd); err != nil {
			// All or nothing, so a failed F_SETFD leaves FD_CLOEXEC as it was.
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, old)
			return -1, err
		}
		return 0, nil
	default:
		r, err := unix.FcntlInt(uintptr(fd), cmd, arg)
		if err != nil {
			return -1, err
		}
		return r, nil
	}
}

// sweepLocked drops every mark whose number no longer holds the marked file.
// Sweeping on every call, not just for the fd asked about, bounds how long a
// closed pipe or socket is kept alive by its held duplicate.
func sweepLocked() {
	for fd, m := range table.marks {
		if same, err := sameFile(fd, m.dup); err != nil || !same {
			drop(fd, m)
		}
	}
}

// drop forgets the mark on fd and closes its duplicate, unless the duplicate's
// number was taken over by someone else's file, which is theirs to close.
func drop(fd int, m mark) {
	delete(table.marks, fd)
	var st unix.Stat_t
	if unix.Fstat(m.dup, &st) == nil && st.Dev == m.dev && st.Ino == m.ino {
		unix.Close(m.dup)
	}
}

// sameFile reports whether a and b refer to the same open file description.
func sameFile(a, b int) (bool, error) {
	pid := uintptr(unix.Getpid())
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, pid, pid, kcmpFile, uintptr(a), uintptr(b), 0)
	if errno != 0 {
		return false, errno
	}
	return r == 0, nil
}

// floor picks the minimum number for a held duplicate: dupFloor, or half the
// fd limit when that is lower, since F_DUPFD fails with EINVAL at or above it.
func floor() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= 2*dupFloor {
		return dupFloor
	}
	return int(rl.Cur / 2)
}

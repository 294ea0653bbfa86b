package sys

import (
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// ioprioWhoProcess is IOPRIO_WHO_PROCESS: the target is one thread.
const ioprioWhoProcess = 1

// IoprioGet returns thread tid's I/O scheduling class and priority, as
// ioprio_get(2) encodes them.
func IoprioGet(tid int) (int, error) {
	v, err := retry(func() (int, error) {
		r, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if errno != 0 {
			return 0, errno
		}
		return int(r), nil
	})
	if err != nil {
		return 0, os.NewSyscallError("ioprio_get", err)
	}
	return v, nil
}

// IoprioSet sets thread tid's I/O scheduling class and priority.
func IoprioSet(tid, prio int) error {
	err := retryErr(func() error {
		_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio))
		if errno != 0 {
			return errno
		}
		return nil
	})
	if err != nil {
		return os.NewSyscallError("ioprio_set", err)
	}
	return nil
}

// Nap blocks the calling OS thread for d. Waits shorter than a
// millisecond use it rather than time.Sleep: when the Go scheduler has
// nothing else to run, it sleeps in epoll_wait, whose timeout counts whole
// milliseconds, so a 20 µs time.Sleep can last a millisecond. A signal
// ends the nap early, which is harmless to callers that poll.
func Nap(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_ = unix.Nanosleep(&ts, nil)
}

// Yielding runs f on an OS thread of its own that yields the CPU to every
// other thread of normal priority (nice 19), and returns when f does: work
// done while a checkpointed process runs on (writing its image out,
// lifting a pre-copy's tracking) then takes the cores the process leaves,
// not the ones it needs. On a two-core machine a process rewriting its
// memory saw stops of 76-178 ms while crsub wrote its image at normal
// priority, 33-52 ms with crsub at the lowest. The thread gets its
// priority back after (CAP_SYS_NICE); where it cannot, it stays locked to
// the goroutine and goes with it (the runtime parks the main thread for
// good instead), so the priority runs nothing else either way. Threads the
// runtime starts meanwhile are not cloned from a locked thread.
func Yielding(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tid := unix.Gettid()
		// The system call's value is 20 - nice, to keep clear of -1.
		before, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		// Failing, f runs at the priority it would have had.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		f()
		if err == nil && unix.Setpriority(unix.PRIO_PROCESS, tid, 20-before) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

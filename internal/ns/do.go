package ns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread of crsub that joined the namespace nsfile of
// type nstype (a CLONE_NEW* flag; 0 accepts any), and returns its error.
// The thread is never given back to the Go scheduler: it ends with fn, so
// nothing else of crsub ever runs in the namespace. Not for mnt or user
// namespaces, which a thread of a multithreaded process cannot join, nor
// time namespaces (single-threaded processes only).
func Do(nsfile *os.File, nstype int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: the thread exits with this goroutine.
		if err := setns(int(nsfile.Fd()), nstype); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Enter is Do in the namespace /proc/PID/ns/NAME of process pid.
func Enter(pid int, name string, fn func() error) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	if err != nil {
		return err
	}
	defer f.Close()
	return Do(f, 0, fn)
}

func setns(fd, nstype int) error {
	for {
		err := unix.Setns(fd, nstype)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("setns", err)
		}
		return nil
	}
}

// Inode returns the inode of the namespace /proc/PID/ns/NAME (NAME may be
// pid_for_children or time_for_children).
func Inode(pid int, name string) (uint64, error) {
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/ns/%s", pid, name)
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// DoMount runs fn on an OS thread of crsub that joined the namespaces
// nstypes (CLONE_NEW* flags, CLONE_NEWNS among them) of the process of
// pidfd. A thread can only join a mount namespace with a filesystem
// context of its own (unshare(CLONE_FS)), after which it cannot give it
// back: it is never used again, ending with fn, back in crsub's
// namespaces first (the runtime cannot end the main thread, which would
// stay where it is, and /proc/self/ shows that one). before, if set, runs
// on the thread first, still in crsub's namespaces: what needs crsub's
// view of the filesystem (a detached copy of a mount of it) is taken
// there.
func DoMount(pidfd, nstypes int, before, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: the thread exits with this goroutine.
		errc <- doMount(pidfd, nstypes, before, fn)
	}()
	return <-errc
}

func doMount(pidfd, nstypes int, before, fn func() error) (err error) {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare(CLONE_FS)", err)
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	var own []*os.File
	defer func() {
		for _, f := range own {
			f.Close()
		}
	}()
	for flag, name := range map[int]string{unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWNET: "net", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWUTS: "uts"} {
		if nstypes&flag == 0 {
			continue
		}
		f, err := os.Open("/proc/thread-self/ns/" + name)
		if err != nil {
			return err
		}
		own = append(own, f)
	}
	if err := setns(pidfd, nstypes); err != nil {
		return err
	}
	defer func() {
		for _, f := range own {
			if berr := setns(int(f.Fd()), 0); berr != nil && err == nil {
				err = fmt.Errorf("back to crsub's namespace: %w", berr)
			}
		}
	}()
	return fn()
}

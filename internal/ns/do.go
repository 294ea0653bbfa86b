package ns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread of crsub that joined the namespace nsfile of
// type nstype (a CLONE_NEW* flag; 0 accepts any), and returns its error.
// The thread goes back to its own namespace afterwards, or, if it cannot,
// is never used again: nothing else of crsub runs in the namespace. (A
// thread merely left to end with fn is not enough: the runtime cannot end
// the main thread, which would stay in the namespace, and with it what
// /proc/self/ns/ says.) Not for mnt or user namespaces, which a thread of
// a multithreaded process cannot join, nor time namespaces
// (single-threaded processes only).
func Do(nsfile *os.File, nstype int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := ownOfType(int(nsfile.Fd()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		if err := setns(int(nsfile.Fd()), nstype); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if setns(int(own.Fd()), 0) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// ownOfType opens the calling thread's namespace of the type of nsfd.
func ownOfType(nsfd int) (*os.File, error) {
	typ, err := unix.IoctlRetInt(nsfd, unix.NS_GET_NSTYPE)
	if err != nil {
		return nil, os.NewSyscallError("ioctl(NS_GET_NSTYPE)", err)
	}
	names := map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWPID: "pid",
		unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWTIME: "time", unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWUSER: "user"}
	name, ok := names[typ]
	if !ok {
		return nil, fmt.Errorf("namespace of type %#x: not a kind crsub knows", typ)
	}
	return os.Open("/proc/thread-self/ns/" + name)
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

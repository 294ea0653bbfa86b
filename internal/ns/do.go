package ns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// Do runs fn on an OS thread of crsub that joined the namespace nsfile of
// type nstype (a CLONE_NEW* flag; 0 accepts any), and returns its error
// (sys.InNamespace: nothing else of crsub runs in the namespace). Not for
// mnt or user namespaces, which a thread of a multithreaded process cannot
// join, nor time namespaces (single-threaded processes only).
func Do(nsfile *os.File, nstype int, fn func() error) error {
	_, err := sys.InNamespace(int(nsfile.Fd()), nstype, func() (struct{}, error) { return struct{}{}, fn() })
	return err
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

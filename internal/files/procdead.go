package files

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A file or directory of /proc/PID of a process that has exited (opened
// while it ran, or a working directory entered then) stays open on a
// directory the kernel unhashed. A restart makes a process to stand for
// the dead one, with its pid if that is free, in the pid namespace the
// proc shows, opens the file through it, and reaps it before the tasks
// run (StandIn), as CRIU does: the file is a dead process's again.

// deadProcPid says whether fd is open on /proc/N or a file under it, on a
// proc, where N is a process that has exited: its /proc/N is gone (from
// the proc the process sees at that path).
func deadProcPid(fd *Fd) (int, bool) {
	pid, _, ok := procPidPath(fd.Link.Path)
	if !ok {
		return 0, false
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(fd.Copy.Fd()), &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return 0, false
	}
	var st unix.Stat_t
	err := unix.Stat(fmt.Sprintf("/proc/%d/root/proc/%d", fd.Pid, pid), &st)
	if fd.Link.Deleted || errors.Is(err, unix.ENOENT) {
		return pid, true
	}
	return 0, false
}

// openDeadProc opens f, a file of /proc/f.DeadPid, in t, through a process
// standing for the dead one.
func openDeadProc(c *RestoreContext, t Target, f *ckpt.File, flags int) (int, error) {
	_, rest, ok := procPidPath(f.Path)
	if !ok {
		return -1, fmt.Errorf("%s is not a file of /proc/%d", f.Path, f.DeadPid)
	}
	pidns, _ := c.procPidNamespace(t, f.Identity.Dev)
	host, inNamespace, err := c.StandIn(f.DeadPid, pidns)
	if err != nil {
		return -1, fmt.Errorf("%s, of a process that had exited: %w", f.Path, err)
	}
	pid := host
	if pidns != nil {
		pid = inNamespace
	}
	if pid != f.DeadPid {
		t.Warn("file in /proc of a process that had exited: its pid is taken, another stands for it", "path", f.Path, "instead", pid)
	}
	path := "/proc/" + strconv.Itoa(pid) + rest
	fd, err := t.Open(path, flags, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/stub"
	"github.com/crsub/crsub/internal/sys"
)

// A pidfd (pidfd_open, clone's CLONE_PIDFD; Go's os.StartProcess keeps one
// for each child) is the process it refers to. One of the tree's processes
// keeps its pid at restart, but may not exist yet when the fd is restored
// (a parent's fds come before its children): the fd holds /dev/null until
// every task exists, then the pidfd takes its place (RestoreContext.Later).
// A pidfd of a process outside the tree is opened again if that process
// still runs (same pid and start time). One of a process that has exited is
// a pidfd of a throwaway process crsub makes for it (one per inode: two
// pidfds of one dead process share it, of two do not) and reaps before the
// tasks run (RestoreContext.Close).
var pidfdKind = &Kind{
	Files:   []string{ckpt.FilePidfd},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdPidfd },
	Dump:    dumpPidfd,
	Restore: restorePidfd,
}

func dumpPidfd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	p := fd.Info.Pidfd
	if p == nil {
		return 0, fmt.Errorf("pidfd: fdinfo has no Pid")
	}
	if p.Pid <= 0 {
		f := ckpt.File{Kind: ckpt.FilePidfd, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino},
			Pidfd: &ckpt.PidfdState{Pid: -1, Dead: true}}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	st, err := procfs.ReadStat(p.Pid)
	if err != nil {
		return 0, fmt.Errorf("pidfd of pid %d: %w", p.Pid, err)
	}
	f := ckpt.File{Kind: ckpt.FilePidfd, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino},
		Pidfd: &ckpt.PidfdState{Pid: p.Pid, StartTime: st.StartTime}}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restorePidfd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	p := f.Pidfd
	if p == nil {
		return -1, fmt.Errorf("pidfd: no pid in the image")
	}
	flags := uint64(0)
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags = unix.PIDFD_NONBLOCK
	}
	if p.Dead {
		return restoreDeadPidfd(c, t, f)
	}
	if c.InTree != nil && c.InTree(p.Pid) {
		pid := p.Pid
		if c.InnerPid != nil {
			pid = c.InnerPid(pid)
		}
		return openLater(c, t, rec.Objref, func(t Target) (int, error) {
			fd, err := t.Syscall(unix.SYS_PIDFD_OPEN, uint64(pid), flags)
			if err != nil {
				return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
			}
			return int(fd), nil
		})
	}
	st, err := procfs.ReadStat(p.Pid)
	if err != nil || st.StartTime != p.StartTime {
		return -1, fmt.Errorf("pidfd of pid %d, which is not in the image: that process is gone", p.Pid)
	}
	fd, err := t.Syscall(unix.SYS_PIDFD_OPEN, uint64(p.Pid), flags)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", p.Pid, err)
	}
	return int(fd), nil
}

// restoreDeadPidfd gives t a pidfd of the throwaway process standing for
// the dead process of f's inode, made on its first pidfd.
func restoreDeadPidfd(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	if c.Take == nil {
		return -1, fmt.Errorf("pidfd of a process that has exited: the driver cannot hand fds over")
	}
	pid, ok := c.deadPids[f.Identity.Inode]
	if !ok {
		var err error
		if pid, err = stub.Spawn(0); err != nil {
			return -1, fmt.Errorf("pidfd of a process that has exited: a process to stand for it: %w", err)
		}
		if c.deadPids == nil {
			c.deadPids = map[uint64]int{}
		}
		c.deadPids[f.Identity.Inode] = pid
	}
	local, err := sys.PidfdOpen(pid)
	if err != nil {
		return -1, fmt.Errorf("pidfd of a process that has exited: %w", err)
	}
	defer local.Close()
	if f.Flags&unix.O_NONBLOCK != 0 {
		if _, err := unix.FcntlInt(uintptr(local.Int()), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
			return -1, fmt.Errorf("pidfd of a process that has exited: %w", os.NewSyscallError("fcntl", err))
		}
	}
	return c.Take(local.Int(), t)
}

// StandIn makes a process to stand for the process pid that had exited,
// with that pid if it is free (another otherwise), for its /proc directory
// to be opened or entered; it is killed and reaped at Close, which leaves
// what was opened so on a process gone, as it was. One stands for each
// pid. pid is a pid of pid namespace pidns, made again by the restart
// (nil: crsub's); the pid returned is crsub's for the process, and the
// one it has in pidns (pid, or another if pid was taken) the second.
func (c *RestoreContext) StandIn(pid int, pidns *os.File) (host, inNamespace int, _ error) {
	key := standInKey{pidns: pidns, pid: pid}
	if s, ok := c.standIns[key]; ok {
		return s.host, s.inNamespace, nil
	}
	spawn := stub.Spawn
	if pidns != nil {
		spawn = func(pid int) (int, error) {
			return sys.InNamespace(int(pidns.Fd()), unix.CLONE_NEWPID, func() (int, error) { return stub.SpawnBelow(pid) })
		}
	}
	host, err := spawn(pid)
	if errors.Is(err, stub.ErrPidInUse) {
		host, err = spawn(0)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("a process to stand for pid %d: %w", pid, err)
	}
	inNamespace = host
	if pidns != nil {
		if inNamespace, err = innermostPid(host); err != nil {
			reap(host)
			return 0, 0, fmt.Errorf("a process to stand for pid %d: %w", pid, err)
		}
	}
	if c.standIns == nil {
		c.standIns = map[standInKey]standIn{}
	}
	c.standIns[key] = standIn{host: host, inNamespace: inNamespace}
	return host, inNamespace, nil
}

// standInKey names a dead process a stand-in is for: its pid in its pid
// namespace (nil: crsub's); standIn is that stand-in, by its pid in
// crsub's namespace and in that one.
type standInKey struct {
	pidns *os.File
	pid   int
}

type standIn struct{ host, inNamespace int }

// innermostPid is the pid process pid has in the innermost pid namespace
// it is in (the last of NSpid in its status).
func innermostPid(pid int) (int, error) {
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return 0, err
	}
	if len(st.NSpid) == 0 {
		return 0, fmt.Errorf("pid %d: no NSpid in its status", pid)
	}
	return st.NSpid[len(st.NSpid)-1], nil
}

// reapDead kills and reaps the processes standing for dead ones: their
// pidfds in the tasks then refer to processes that have exited, and their
// /proc directories are gone.
func (c *RestoreContext) reapDead() {
	for key, s := range c.standIns {
		reap(s.host)
		delete(c.standIns, key)
	}
	for ino, pid := range c.deadPids {
		reap(pid)
		delete(c.deadPids, ino)
	}
}

// reap kills and reaps a child of crsub.
func reap(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != unix.EINTR {
			break
		}
	}
}

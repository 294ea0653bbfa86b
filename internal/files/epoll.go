package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// An epoll instance is a file record of its own plus one watch record per
// registered file, written after the whole fd table (as Linux-CR did), so
// that the watched files, epoll instances included, exist when a restart
// registers them again.
var epollKind = &Kind{
	Files:  []string{ckpt.FileEpoll},
	Claims: func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdEpoll },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		f := ckpt.File{Kind: ckpt.FileEpoll, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}}
		ref := c.W.NewObjref()
		if err := c.WriteFile(fd, ref, nil, &f); err != nil {
			return 0, err
		}
		c.after = append(c.after, func(c *DumpContext) error { return dumpWatches(c, fd, ref) })
		return ref, nil
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		fd, err := t.Syscall(unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC)
		if err != nil {
			return -1, fmt.Errorf("epoll_create1: %w", err)
		}
		return int(fd), nil
	},
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeEpollWatch: restoreWatch},
}

// dumpWatches writes an epoll instance's watches. fdinfo names each target
// by the fd number it was registered under, which may since have been
// closed or reused: the file is found among the process's fds by inode and
// confirmed with kcmp(KCMP_EPOLL_TFD). An epoll instance that only a
// queued message carries (SCM_RIGHTS: ep is crsub's copy) watches files
// of the tree: they are found among the fds of the processes dumped so far.
func dumpWatches(c *DumpContext, ep *Fd, epRef ckpt.Objref) error {
	carried := ep.Pid == os.Getpid()
	pid := ep.Pid
	if carried {
		pid = c.Pid
	}
	// The process's fds by inode: a server may watch thousands.
	byInode := map[uint64][]Dumped{}
	for _, d := range c.Dumped {
		if d.Fd.Pid == ep.Pid || carried {
			byInode[d.Fd.Stat.Ino] = append(byInode[d.Fd.Stat.Ino], d)
		}
	}
	// kcmp finds a watch by its fd number and, among the watches
	// registered under that number (files since closed), by its rank in
	// the order fdinfo lists them.
	rank := map[int]uint32{}
	for _, w := range ep.Info.Epoll {
		var target ckpt.Objref
		toff := rank[w.TFD]
		rank[w.TFD]++
		for _, cand := range byInode[w.Ino] {
			same, err := sys.KcmpEpoll(cand.Fd.Pid, ep.Pid, cand.Fd.Num, sys.KcmpEpollSlot{Efd: uint32(ep.Num), Tfd: uint32(w.TFD), Toff: toff})
			if err != nil {
				return fmt.Errorf("fd %d (epoll): identifying the file registered as fd %d: %w", ep.Num, w.TFD, err)
			}
			if same == 0 {
				target = cand.Ref
				break
			}
		}
		if target == 0 && carried {
			return fmt.Errorf("an epoll instance a queued message carries: the file registered as fd %d (inode %d) is held by no fd of the processes dumped so far; not supported yet", w.TFD, w.Ino)
		}
		if target == 0 {
			return fmt.Errorf("fd %d (epoll): the file registered as fd %d (inode %d) is held by no fd of the process; not supported yet", ep.Num, w.TFD, w.Ino)
		}
		rec := ckpt.EpollWatch{Pid: pid, Epoll: epRef, Target: target, Fd: w.TFD, Events: w.Events, Data: w.Data}
		if err := c.W.Write(ckpt.TypeEpollWatch, 0, []ckpt.Objref{epRef, target}, &rec); err != nil {
			return err
		}
	}
	return nil
}

// restoreWatch registers a watched file again, at whatever fd now holds it
// (a substitute, when the file was replaced).
func restoreWatch(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var w ckpt.EpollWatch
	if err := rec.Decode(&w); err != nil {
		return err
	}
	epfd, err := fdOrOpen(c, t, w.Epoll)
	if err != nil {
		return fmt.Errorf("epoll watch of fd %d: the epoll instance: %w", w.Fd, err)
	}
	tfd, err := fdOrOpen(c, t, w.Target)
	if err != nil {
		return fmt.Errorf("epoll watch of fd %d: the watched file: %w", w.Fd, err)
	}
	// struct epoll_event is packed on x86_64: u32 events, u64 data.
	ev := make([]byte, 12)
	putLE32(ev, w.Events)
	putLE64(ev[4:], w.Data)
	addr, err := t.Scratch(ev)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_EPOLL_CTL, uint64(epfd), unix.EPOLL_CTL_ADD, uint64(tfd), addr); err != nil {
		return fmt.Errorf("epoll_ctl(fd %d, ADD fd %d (registered as %d), events %#x): %w", epfd, tfd, w.Fd, w.Events, err)
	}
	return nil
}

// fdOrOpen returns the fd that holds a file in t once placed, or else (an
// epoll instance or its target that only a queued message carries, or
// that another process holds) the fd the driver opened it at in t.
func fdOrOpen(c *RestoreContext, t Target, ref ckpt.Objref) (int, error) {
	if fd, ok := t.FdOf(ref); ok {
		return fd, nil
	}
	if c.Open == nil {
		return -1, errors.New("no fd holds it")
	}
	return c.Open(ref, t)
}

func putLE32(b []byte, v uint32) {
	for i := 0; i < 4; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func putLE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

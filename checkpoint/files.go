package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// examineFds looks at every fd of a process before anything is written:
// its /proc link, fdinfo and a copy of it here; and counts pipe ends, since
// a pipe is external only if one of its ends is outside the whole tree.
func (s *session) examineFds(p *proc) error {
	pidfd, err := sys.PidfdOpen(p.pid)
	if err != nil {
		return err
	}
	defer pidfd.Close()
	nums, err := procfs.Fds(p.pid)
	if err != nil {
		return err
	}
	if s.copies == nil {
		s.copies = descriptions{}
	}
	for _, n := range nums {
		fd, err := s.examineFd(p.pid, pidfd, n)
		if err != nil {
			return &FdError{Pid: p.pid, Fd: n, Err: fileLimitHint(err)}
		}
		// One copy per open file description, whichever fds share it: a
		// tree may hold more fds than crsub may open (a socket pair
		// inherited by hundreds of processes), and any copy of a
		// description, and what was asked of it, stands for all of them.
		first, found, at, err := s.copies.lookup(fd)
		switch {
		case err != nil:
			fd.Copy.Close()
			return &FdError{Pid: p.pid, Fd: n, Err: err}
		case found:
			fd.Copy.Close()
			fd.Copy, fd.Socket = first.Fd.Copy, first.Fd.Socket
		default:
			s.copies.insert(at, files.Dumped{Fd: fd})
			p.copies = append(p.copies, fd.Copy)
			if err := s.examineSocket(fd); err != nil {
				return &FdError{Pid: p.pid, Fd: n, Err: fileLimitHint(err)}
			}
		}
		p.fds = append(p.fds, fd)
		s.note(fd)
	}
	return nil
}

// fileLimitHint says, of a checkpoint that ran out of files, why crsub
// needs so many and what to raise.
func fileLimitHint(err error) error {
	if !errors.Is(err, unix.EMFILE) {
		return err
	}
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	return fmt.Errorf("%w: crsub holds a copy of each open file description of the tree while it checkpoints, and may open %d files (RLIMIT_NOFILE): raise its limit", err, lim.Cur)
}

// note counts an fd among those of the tree: pty masters and slaves, sockets, pipe
// ends.
func (s *session) note(fd *files.Fd) {
	if index, ok := files.PtyIndexOfMaster(fd); ok && s.files.PtyMasters[index] == nil {
		s.files.PtyMasters[index] = fd
	}
	if index, ok := files.PtyIndexOfSlave(fd); ok && s.files.PtySlaves[index] == nil {
		s.files.PtySlaves[index] = fd
	}
	if fd.Link.Kind == procfs.FdSocket {
		if _, seen := s.files.Sockets[fd.Link.Inode]; !seen {
			s.files.Sockets[fd.Link.Inode] = fd
		}
	}
	if fd.Link.Kind == procfs.FdPipe {
		ends := s.files.PipeEnds[fd.Link.Inode]
		if ends == nil {
			ends = &files.PipeEnds{}
			s.files.PipeEnds[fd.Link.Inode] = ends
		}
		if int(fd.Info.Flags)&unix.O_ACCMODE == unix.O_RDONLY {
			ends.Read++
		} else {
			ends.Write++
		}
	}
}

// examinePassed examines the files the messages queued at the tree's unix
// sockets carry (files.PeekPassed) and counts them with the tree's fds: a
// pipe end only in a message is still in the checkpoint.
func (s *session) examinePassed() error {
	self := os.Getpid()
	pidfd, err := sys.PidfdOpen(self)
	if err != nil {
		return err
	}
	defer pidfd.Close()
	examine := func(local int) (*files.Fd, error) {
		defer unix.Close(local)
		fd, err := s.examineFd(self, pidfd, local)
		if err != nil {
			return nil, err
		}
		if err := s.examineSocket(fd); err != nil {
			fd.Copy.Close()
			return nil, err
		}
		fd.Num = int(fd.Copy.Fd()) // the copy outlives the peek's fd
		return fd, nil
	}
	for _, p := range s.procs {
		for _, fd := range p.fds {
			passed, err := s.files.PeekPassed(fd, examine)
			if err != nil {
				return &ProcessError{Pid: p.pid, Err: &FdError{Pid: p.pid, Fd: fd.Num, Err: err}}
			}
			for _, f := range passed {
				s.note(f)
			}
		}
	}
	return nil
}

// dumpDescription dumps the open file description fd refers to, once: an
// fd on a description dumped already (in this or an earlier process, or
// carried by a queued message) shares its record. It returns the record
// and the kind that wrote it.
func (s *session) dumpDescription(fd *files.Fd) (ckpt.Objref, *files.Kind, error) {
	if s.descriptions == nil {
		s.descriptions = descriptions{}
	}
	ref, at, err := s.descriptions.find(fd)
	if err != nil || ref != 0 {
		return ref, nil, err
	}
	kind, err := files.KindFor(s.files, fd)
	if err != nil {
		return 0, nil, err
	}
	if ref, err = kind.Dump(s.files, fd); err != nil {
		return 0, kind, err
	}
	s.descriptions.insert(at, files.Dumped{Fd: fd, Ref: ref})
	return ref, kind, nil
}

// closeFds closes the copies of the process's fds it holds: those of the
// descriptions first seen in it.
func (p *proc) closeFds() {
	for _, c := range p.copies {
		c.Close()
	}
	p.fds, p.copies = nil, nil
}

// dumpFiles writes a process's fd table: one file record per open file
// description, shared by the fds (in this or an earlier process) that
// refer to it, and one fd record per fd; then what comes after the fd
// table (epoll watches).
func (s *session) dumpFiles(cw *ckpt.Writer, p *proc, procRef ckpt.Objref) error {
	ctx := s.files
	ctx.Pid = p.pid
	if s.descriptions == nil {
		s.descriptions = descriptions{}
	}
	for _, fd := range p.fds {
		ref, kind, err := s.dumpDescription(fd)
		if err != nil {
			if kind != nil {
				return &FdError{Pid: p.pid, Fd: fd.Num, Kind: kind.String(), Err: err}
			}
			return &FdError{Pid: p.pid, Fd: fd.Num, Err: err}
		}
		ctx.Dumped = append(ctx.Dumped, files.Dumped{Fd: fd, Ref: ref})
		rec := ckpt.Fd{Pid: p.pid, Fd: fd.Num, Cloexec: fd.Cloexec, File: ref}
		if err := cw.Write(ckpt.TypeFd, 0, []ckpt.Objref{procRef, ref}, &rec); err != nil {
			return err
		}
	}
	return ctx.Finish()
}

// descriptions are the open file descriptions dumped so far, one fd each,
// by file (device, inode), in kcmp's order. kcmp orders files by their
// kernel address, obfuscated the same way for the whole boot, so an fd is
// placed by binary search instead of being compared with every earlier fd
// of its file: 3000 fds on one file took 8 s of kcmp calls that way.
type descriptions map[[2]uint64][]files.Dumped

func descriptionKey(fd *files.Fd) [2]uint64 { return [2]uint64{fd.Stat.Dev, fd.Stat.Ino} }

// find returns the objref of the description fd refers to if it was
// dumped, else 0 and where insert puts it.
func (d descriptions) find(fd *files.Fd) (ckpt.Objref, int, error) {
	e, found, at, err := d.lookup(fd)
	if !found {
		return 0, at, err
	}
	return e.Ref, at, nil
}

// lookup returns the entry of the description fd refers to, if there is
// one, else where insert puts it.
func (d descriptions) lookup(fd *files.Fd) (files.Dumped, bool, int, error) {
	list := d[descriptionKey(fd)]
	lo, hi := 0, len(list)
	for lo < hi {
		mid := (lo + hi) / 2
		e := list[mid]
		order, err := sys.Kcmp(e.Fd.Pid, fd.Pid, sys.KcmpFile, uintptr(e.Fd.Num), uintptr(fd.Num))
		if err != nil {
			return files.Dumped{}, false, 0, fmt.Errorf("comparing with fd %d of pid %d: %w", e.Fd.Num, e.Fd.Pid, err)
		}
		switch order {
		case sys.KcmpEqual:
			return e, true, mid, nil
		case sys.KcmpLess:
			lo = mid + 1
		case sys.KcmpGreater:
			hi = mid
		default:
			return files.Dumped{}, false, 0, fmt.Errorf("kcmp with fd %d of pid %d gave no order (%d)", e.Fd.Num, e.Fd.Pid, order)
		}
	}
	return files.Dumped{}, false, lo, nil
}

func (d descriptions) insert(at int, e files.Dumped) {
	key := descriptionKey(e.Fd)
	d[key] = slices.Insert(d[key], at, e)
}

// examineFd gathers what the kinds need about one fd: its /proc link and
// fdinfo, and a copy of it in this process; a socket's copy is asked the
// rest by examineSocket.
func (s *session) examineFd(pid int, pidfd *sys.FD, n int) (*files.Fd, error) {
	target, err := procfs.FdTarget(pid, n)
	if err != nil {
		return nil, err
	}
	info, err := procfs.ReadFdInfo(pid, n)
	if err != nil {
		return nil, err
	}
	copyFD, err := sys.PidfdGetfd(pidfd, n)
	if err != nil {
		return nil, fmt.Errorf("%s: taking a copy: %w", target, err)
	}
	copyFile := copyFD.File(target)
	fd := &files.Fd{Pid: pid, Num: n, Link: procfs.ParseFdTarget(target), Info: info, Copy: copyFile,
		Cloexec: info.Flags&unix.O_CLOEXEC != 0}
	fd.Info.Flags &^= unix.O_CLOEXEC
	if err := unix.Fstat(int(copyFile.Fd()), &fd.Stat); err != nil {
		copyFile.Close()
		return nil, fmt.Errorf("%s: %w", target, os.NewSyscallError("fstat", err))
	}
	return fd, nil
}

// examineSocket asks a socket's copy what the kinds claim sockets by
// (files.SocketInfo): once per open file description.
func (s *session) examineSocket(fd *files.Fd) error {
	if fd.Link.Kind != procfs.FdSocket {
		return nil
	}
	return s.files.ExamineSocket(fd)
}

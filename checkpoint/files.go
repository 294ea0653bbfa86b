package checkpoint

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// dumpFiles writes the fd table: one file record per open file description
// (fds that share one, through dup, share the record) and one fd record per
// fd.
func (s *session) dumpFiles(cw *ckpt.Writer, procRef ckpt.Objref) error {
	pidfd, err := sys.PidfdOpen(s.pid)
	if err != nil {
		return err
	}
	defer pidfd.Close()
	nums, err := procfs.Fds(s.pid)
	if err != nil {
		return err
	}
	fds := make([]*files.Fd, 0, len(nums))
	defer func() {
		for _, fd := range fds {
			fd.Copy.Close()
		}
	}()
	ctx := &files.DumpContext{W: cw, Log: s.log, Pipes: map[uint64]ckpt.Objref{}, PipeEnds: map[uint64]*files.PipeEnds{}}
	for _, n := range nums {
		fd, err := s.examineFd(pidfd, n)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
		if fd.Link.Kind == procfs.FdPipe {
			ends := ctx.PipeEnds[fd.Link.Inode]
			if ends == nil {
				ends = &files.PipeEnds{}
				ctx.PipeEnds[fd.Link.Inode] = ends
			}
			if int(fd.Info.Flags)&unix.O_ACCMODE == unix.O_RDONLY {
				ends.Read++
			} else {
				ends.Write++
			}
		}
	}
	var done []dumpedFd
	for _, fd := range fds {
		ref, err := sharedDescription(s.pid, fd, done)
		if err != nil {
			return err
		}
		if ref == 0 {
			kind, err := files.KindFor(fd)
			if err != nil {
				return err
			}
			if ref, err = kind.Dump(ctx, fd); err != nil {
				return fmt.Errorf("fd %d (%s): %w", fd.Num, kind.Name, err)
			}
		}
		done = append(done, dumpedFd{fd, ref})
		ctx.Dumped = append(ctx.Dumped, files.Dumped{Fd: fd, Ref: ref})
		rec := ckpt.Fd{Pid: s.pid, Fd: fd.Num, Cloexec: fd.Cloexec, File: ref}
		if err := cw.Write(ckpt.TypeFd, 0, []ckpt.Objref{procRef, ref}, &rec); err != nil {
			return err
		}
	}
	return ctx.Finish()
}

// dumpedFd is an fd whose file record is written.
type dumpedFd struct {
	fd  *files.Fd
	ref ckpt.Objref
}

// sharedDescription returns the objref of an earlier fd that refers to the
// same open file description as fd (kcmp KCMP_FILE), or 0.
func sharedDescription(pid int, fd *files.Fd, earlier []dumpedFd) (ckpt.Objref, error) {
	for _, e := range earlier {
		if e.fd.Stat.Ino != fd.Stat.Ino || e.fd.Stat.Dev != fd.Stat.Dev {
			continue
		}
		same, err := sys.Kcmp(pid, pid, sys.KcmpFile, uintptr(e.fd.Num), uintptr(fd.Num))
		if err != nil {
			return 0, fmt.Errorf("fd %d: comparing with fd %d: %w", fd.Num, e.fd.Num, err)
		}
		if same == 0 {
			return e.ref, nil
		}
	}
	return 0, nil
}

// examineFd gathers what the kinds need about one fd: its /proc link and
// fdinfo, and a copy of it in this process.
func (s *session) examineFd(pidfd *sys.FD, n int) (*files.Fd, error) {
	target, err := procfs.FdTarget(s.pid, n)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	info, err := procfs.ReadFdInfo(s.pid, n)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	copyFD, err := sys.PidfdGetfd(pidfd, n)
	if err != nil {
		return nil, fmt.Errorf("fd %d (%s): taking a copy: %w", n, target, err)
	}
	copyFile := copyFD.File(target)
	fd := &files.Fd{Pid: s.pid, Num: n, Link: procfs.ParseFdTarget(target), Info: info, Copy: copyFile,
		Cloexec: info.Flags&unix.O_CLOEXEC != 0}
	fd.Info.Flags &^= unix.O_CLOEXEC
	if err := unix.Fstat(int(copyFile.Fd()), &fd.Stat); err != nil {
		copyFile.Close()
		return nil, fmt.Errorf("fd %d (%s): %w", n, target, os.NewSyscallError("fstat", err))
	}
	return fd, nil
}

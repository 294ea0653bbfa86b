package files

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A pipe is two records: the pipe object, with the bytes buffered in it as
// payload, and one file record per end, depending on it. A pipe with an end
// held outside the checkpointed processes is external: its bytes belong to
// someone else and a restart needs a substitute for it.
var pipeKind = &Kind{
	Files:   []string{ckpt.FilePipe},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdPipe },
	Dump:    dumpPipeEnd,
	Restore: restorePipeEnd,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypePipe: restorePipe},
}

func pipeEnd(flags int) string {
	if flags&unix.O_ACCMODE == unix.O_RDONLY {
		return "read"
	}
	return "write"
}

func dumpPipeEnd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	ino := fd.Link.Inode
	f := ckpt.File{Kind: ckpt.FilePipe, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, PipeEnd: pipeEnd(int(fd.Info.Flags)), Identity: ckpt.FileIdentity{Inode: ino}}
	ends := c.PipeEnds[ino]
	ref := c.W.NewObjref()
	if (ends == nil || ends.Read == 0 || ends.Write == 0) && !otherEndClosed(fd) {
		f.External = true
		f.ExternalReason = fmt.Sprintf("pipe:[%d] has its other end outside the checkpoint", ino)
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	pipeRef, ok := c.Pipes[ino]
	if !ok {
		var err error
		if pipeRef, err = dumpPipe(c, fd); err != nil {
			return 0, err
		}
		c.Pipes[ino] = pipeRef
	}
	return ref, c.WriteFile(fd, ref, []ckpt.Objref{pipeRef}, &f)
}

// otherEndClosed reports whether a pipe end has no peer at all (rather than
// one outside the checkpoint): the read end of a pipe without writers polls
// POLLHUP, the write end of one without readers POLLERR. GNU make, for one,
// gives recipes such a pipe as stdin.
func otherEndClosed(fd *Fd) bool {
	fds := []unix.PollFd{{Fd: int32(fd.Copy.Fd()), Events: unix.POLLIN | unix.POLLOUT}}
	if n, err := unix.Poll(fds, 0); err != nil || n != 1 {
		return false
	}
	if pipeEnd(int(fd.Info.Flags)) == "read" {
		return fds[0].Revents&unix.POLLHUP != 0
	}
	return fds[0].Revents&unix.POLLERR != 0
}

// dumpPipe writes the pipe object with its buffered bytes, read without
// consuming them.
func dumpPipe(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	size, err := unix.FcntlInt(fd.Copy.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	reader := fd.Copy
	if pipeEnd(int(fd.Info.Flags)) == "write" {
		// A write end cannot be peeked; /proc gives a read end of the
		// same pipe without touching the target.
		r, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", fd.Pid, fd.Num), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("a read end for the pipe: %w", err)
		}
		defer r.Close()
		reader = r
	}
	rfd, err := unix.FcntlInt(reader.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("%w", err)
	}
	owned := sys.NewFD(rfd)
	defer owned.Close()
	data, err := sys.PeekPipe(owned, size)
	if err != nil {
		return 0, fmt.Errorf("reading the pipe's buffer: %w", err)
	}
	ref := c.W.NewObjref()
	p := ckpt.Pipe{Inode: fd.Link.Inode, Size: size}
	return ref, c.W.WriteWithPayload(ckpt.TypePipe, ref, nil, &p, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// restorePipe recreates a pipe record inside t and refills it.
func restorePipe(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var p ckpt.Pipe
	if err := rec.Decode(&p); err != nil {
		return err
	}
	r, w, err := t.Pipe2(0)
	if err != nil {
		return fmt.Errorf("pipe:[%d]: %w", p.Inode, err)
	}
	rp := &RestoredPipe{Pid: t.Pid(), Read: r, Write: w}
	c.Pipes[rec.Objref] = rp
	t.Hold(&rp.Read)
	t.Hold(&rp.Write)
	wcopy, err := t.Copy(w)
	if err != nil {
		return fmt.Errorf("pipe:[%d]: %w", p.Inode, err)
	}
	rp.anchor = wcopy // RestoreContext.Close closes it
	if p.Size > 0 {
		if _, err := unix.FcntlInt(wcopy.Fd(), unix.F_SETPIPE_SZ, p.Size); err != nil {
			return fmt.Errorf("pipe:[%d]: F_SETPIPE_SZ %d: %w", p.Inode, p.Size, err)
		}
	}
	if rec.PayloadLen > int64(max(p.Size, 65536)) {
		return fmt.Errorf("pipe:[%d]: %d bytes buffered exceed its size %d", p.Inode, rec.PayloadLen, p.Size)
	}
	if err := refillPipe(wcopy, rec.Payload()); err != nil {
		return fmt.Errorf("pipe:[%d]: refilling %d bytes: %w", p.Inode, rec.PayloadLen, err)
	}
	return nil
}

// refillPipe writes what a pipe (or FIFO) held back into it, in whole pages
// but for the last write: a pipe's capacity is counted in buffers of a page,
// and a write that is not a multiple of one leaves a buffer part empty
// (the next write merges into it only its own remainder), so a pipe filled
// to its size would run out of buffers before its bytes were all in.
func refillPipe(w io.Writer, payload io.Reader) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(payload, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func restorePipeEnd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var pipe *RestoredPipe
	for _, d := range rec.Deps {
		if p, ok := c.Pipes[d]; ok {
			pipe = p
		}
	}
	if pipe == nil {
		return -1, fmt.Errorf("pipe:[%d] %s end: its pipe record is missing", f.Identity.Inode, f.PipeEnd)
	}
	end, which := &pipe.Write, 1
	if f.PipeEnd == "read" {
		end, which = &pipe.Read, 0
	}
	if pipe.described[which] && pipe.anchor != nil {
		// Another description of an end already restored: the program
		// opened the pipe again (through /proc/PID/fd/N).
		return reopenPipe(c, t, pipe.anchor, f)
	}
	pipe.described[which] = true
	if pipe.Pid != t.Pid() {
		// The pipe was made in another process of the tree: this one gets
		// its own fd on the same end, which the maker closes later.
		if *end < 0 {
			return -1, fmt.Errorf("pipe:[%d]: its %s end was given away", f.Identity.Inode, f.PipeEnd)
		}
		fd, err := c.Transfer(pipe.Pid, *end, t)
		if err != nil {
			return -1, fmt.Errorf("pipe:[%d] %s end from pid %d: %w", f.Identity.Inode, f.PipeEnd, pipe.Pid, err)
		}
		return fd, setNonblock(t, fd, f.Flags)
	}
	t.Unhold(end)
	fd := *end
	if fd < 0 {
		// A second description of the same end: a new fd on the pipe.
		return -1, fmt.Errorf("pipe:[%d]: a second open file description of the %s end is not supported yet", f.Identity.Inode, f.PipeEnd)
	}
	*end = -1
	return fd, setNonblock(t, fd, f.Flags)
}

// reopenPipe gives t a new open file description of the pipe anchor is
// on, as opening /proc/PID/fd/N of a pipe end does, with f's access mode
// and status flags. The open never blocks: the pipe has both ends.
func reopenPipe(c *RestoreContext, t Target, anchor *os.File, f *ckpt.File) (int, error) {
	if c.Take == nil {
		return -1, fmt.Errorf("pipe:[%d]: a second open file description of the %s end needs the driver to hand fds over", f.Identity.Inode, f.PipeEnd)
	}
	flags := reopenFlags(f.Flags) | unix.O_CLOEXEC | unix.O_NONBLOCK
	local, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", anchor.Fd()), flags, 0)
	if err != nil {
		return -1, fmt.Errorf("pipe:[%d]: opening its %s end again: %w", f.Identity.Inode, f.PipeEnd, os.NewSyscallError("open", err))
	}
	defer unix.Close(local)
	if f.Flags&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(local), unix.F_SETFL, f.Flags&^unix.O_ACCMODE&^unix.O_NONBLOCK); err != nil {
			return -1, fmt.Errorf("pipe:[%d]: %w", f.Identity.Inode, os.NewSyscallError("fcntl", err))
		}
	}
	fd, err := c.Take(local, t)
	if err != nil {
		return -1, fmt.Errorf("pipe:[%d]: handing the new %s end over: %w", f.Identity.Inode, f.PipeEnd, err)
	}
	return fd, nil
}

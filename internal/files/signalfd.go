package files

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A signalfd is its signal mask; O_NONBLOCK is a file flag. The signals it
// reads are the process's pending ones, which the process's own records
// keep.
var signalfdKind = &Kind{
	Files:   []string{ckpt.FileSignalfd},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdSignalfd },
	Dump:    dumpSignalfd,
	Restore: restoreSignalfd,
}

func dumpSignalfd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := fd.Info.Signalfd
	if s == nil {
		return 0, errors.New("signalfd: fdinfo has no sigmask")
	}
	f := ckpt.File{Kind: ckpt.FileSignalfd, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino},
		Signalfd: &ckpt.SignalfdState{Sigmask: s.Sigmask}}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// sigsetBytes is a kernel sigset_t (64 signals on x86_64) as signalfd4
// reads it.
func sigsetBytes(mask uint64) []byte { return binary.LittleEndian.AppendUint64(nil, mask) }

func restoreSignalfd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Signalfd
	if s == nil {
		return -1, errors.New("signalfd: no signal mask in the image")
	}
	flags := uint64(unix.SFD_CLOEXEC)
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.SFD_NONBLOCK
	}
	addr, err := t.Scratch(sigsetBytes(s.Sigmask))
	if err != nil {
		return -1, err
	}
	minusOne := ^uint64(0)
	fd, err := t.Syscall(unix.SYS_SIGNALFD4, minusOne, addr, 8, flags)
	if err != nil {
		return -1, fmt.Errorf("signalfd4(mask %#x): %w", s.Sigmask, err)
	}
	return int(fd), nil
}

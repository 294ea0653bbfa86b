package files

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// An eventfd is its 64-bit counter and its mode (EFD_SEMAPHORE), both in
// fdinfo; O_NONBLOCK is a file flag. Its id (eventfd-id) is not kept.
var eventfdKind = &Kind{
	Files:   []string{ckpt.FileEventfd},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdEventfd },
	Dump:    dumpEventfd,
	Restore: restoreEventfd,
}

func dumpEventfd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	e := fd.Info.Eventfd
	if e == nil {
		return 0, fmt.Errorf("eventfd: fdinfo has no eventfd-count")
	}
	f := ckpt.File{Kind: ckpt.FileEventfd, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino},
		Eventfd: &ckpt.EventfdState{Count: e.Count, Semaphore: e.Semaphore}}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// eventfdCreate splits a counter into what eventfd2 takes (an unsigned
// int) and what must be written afterwards.
func eventfdCreate(count uint64) (initval uint32, write uint64) {
	if count <= 0xffffffff {
		return uint32(count), 0
	}
	return 0, count
}

func eventfdFlags(f *ckpt.File) uint64 {
	flags := uint64(unix.EFD_CLOEXEC)
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.EFD_NONBLOCK
	}
	if f.Eventfd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	return flags
}

func restoreEventfd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	e := f.Eventfd
	if e == nil {
		return -1, fmt.Errorf("eventfd: no eventfd state in the image")
	}
	if e.Count == 0xffffffffffffffff {
		return -1, fmt.Errorf("eventfd: count %#x is above the maximum an eventfd holds", e.Count)
	}
	initval, rest := eventfdCreate(e.Count)
	fdv, err := t.Syscall(unix.SYS_EVENTFD2, uint64(initval), eventfdFlags(f))
	if err != nil {
		return -1, fmt.Errorf("eventfd2: %w", err)
	}
	fd := int(fdv)
	if rest != 0 {
		// A new eventfd counts 0, so this write never blocks.
		b := binary.LittleEndian.AppendUint64(nil, rest)
		addr, err := t.Scratch(b)
		if err == nil {
			_, err = t.Syscall(unix.SYS_WRITE, uint64(fd), addr, 8)
		}
		if err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
			return -1, fmt.Errorf("eventfd: setting the count to %d: %w", e.Count, err)
		}
	}
	return fd, nil
}

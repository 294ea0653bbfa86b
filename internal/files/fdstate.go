package files

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// Every kind of file can have an owner for SIGIO (F_SETOWN_EX, F_SETSIG,
// O_ASYNC) and locks. These are read here for any file record and set
// again by the restart driver once the file's fds are in place.

// FileExtras reads fd's owner and locks into f.
func FileExtras(fd *Fd, f *ckpt.File) error {
	s := int(fd.Copy.Fd())
	var own struct {
		Type int32
		Pid  int32
	}
	if _, _, e := unix.Syscall(unix.SYS_FCNTL, uintptr(s), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&own))); e == 0 {
		sig, _ := unix.FcntlInt(uintptr(s), unix.F_GETSIG, 0)
		if own.Pid != 0 || sig != 0 {
			f.Owner = &ckpt.FileOwner{Type: int(own.Type), Pid: int(own.Pid), Signal: sig}
		}
	}
	// A lease belongs to the open file description: the copy shares it.
	for _, line := range fd.Info.Locks {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "LEASE" && f[2] != "ACTIVE" {
			return &UnsupportedError{Fd: fd.Num, What: "a lease being broken, on " + fd.Link.Path}
		}
	}
	if fileType(&fd.Stat) == unix.S_IFREG {
		if lease, err := unix.FcntlInt(uintptr(s), unix.F_GETLEASE, 0); err == nil && lease != unix.F_UNLCK {
			f.Locks = append(f.Locks, ckpt.FileLock{Kind: "lease", Write: lease == unix.F_WRLCK})
		}
	}
	for _, line := range fd.Info.Locks {
		l, ok, err := ParseLockLine(line)
		if err != nil {
			return fmt.Errorf("lock %q: %w", line, err)
		}
		if ok {
			f.Locks = append(f.Locks, l)
		}
	}
	return nil
}

// ParseLockLine reads an fdinfo "lock:" line as /proc/locks prints it,
// "1: POSIX  ADVISORY  WRITE 6993 fe:00:9978372 0 9". Lines for locks
// crsub does not restore this way (leases: F_GETLEASE reads them, and
// mandatory locks) report ok false.
func ParseLockLine(line string) (ckpt.FileLock, bool, error) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return ckpt.FileLock{}, false, fmt.Errorf("%d fields, want 8", len(f))
	}
	var l ckpt.FileLock
	switch f[1] {
	case "FLOCK":
		l.Kind = "flock"
	case "POSIX":
		l.Kind = "posix"
	case "OFDLCK":
		l.Kind = "ofd"
	default:
		return ckpt.FileLock{}, false, nil
	}
	if f[2] != "ADVISORY" {
		return ckpt.FileLock{}, false, nil
	}
	switch f[3] {
	case "WRITE":
		l.Write = true
	case "READ":
	default:
		return ckpt.FileLock{}, false, fmt.Errorf("access %q", f[3])
	}
	pid, err := strconv.Atoi(f[4])
	if err != nil {
		return ckpt.FileLock{}, false, fmt.Errorf("pid %q", f[4])
	}
	if l.Kind == "posix" {
		l.Pid = pid
	}
	start, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return ckpt.FileLock{}, false, fmt.Errorf("start %q", f[6])
	}
	l.Start = start
	if f[7] != "EOF" {
		end, err := strconv.ParseInt(f[7], 10, 64)
		if err != nil || end < start {
			return ckpt.FileLock{}, false, fmt.Errorf("end %q", f[7])
		}
		l.Len = end - start + 1
	}
	return l, true, nil
}

// RestoreExtras sets a placed file's owner, O_ASYNC and locks in t. pidOf
// maps an image pid to the pid the task sees (a new pid namespace).
func RestoreExtras(t Target, fd int, f *ckpt.File, pidOf func(int) int) error {
	if o := f.Owner; o != nil {
		b := make([]byte, 8)
		putLE32(b, uint32(o.Type))
		putLE32(b[4:], uint32(pidOf(o.Pid)))
		addr, err := t.Scratch(b)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETOWN_EX, addr); err != nil {
			return fmt.Errorf("F_SETOWN_EX %d: %w", o.Pid, err)
		}
		if o.Signal != 0 {
			if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETSIG, uint64(o.Signal)); err != nil {
				return fmt.Errorf("F_SETSIG %d: %w", o.Signal, err)
			}
		}
	}
	if f.Flags&unix.O_ASYNC != 0 {
		flags, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_GETFL)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, flags|unix.O_ASYNC); err != nil {
			return fmt.Errorf("O_ASYNC: %w", err)
		}
	}
	return nil
}

// RestoreLocks takes a placed file's locks again in t: those of process
// pid for POSIX locks (owned by the process), every flock and OFD lock and
// lease (owned by the open file description). A lock someone else took meanwhile
// is an error: the program would otherwise run believing it holds it.
func RestoreLocks(t Target, pid, fd int, f *ckpt.File) error {
	for _, l := range f.Locks {
		switch l.Kind {
		case "lease":
			typ := uint64(unix.F_RDLCK)
			if l.Write {
				typ = unix.F_WRLCK
			}
			if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETLEASE, typ); err != nil {
				return fmt.Errorf("lease: %w", err)
			}
		case "flock":
			op := uint64(unix.LOCK_SH | unix.LOCK_NB)
			if l.Write {
				op = unix.LOCK_EX | unix.LOCK_NB
			}
			if _, err := t.Syscall(unix.SYS_FLOCK, uint64(fd), op); err != nil {
				return fmt.Errorf("flock: %w", err)
			}
		case "posix", "ofd":
			if l.Kind == "posix" && l.Pid != pid {
				continue
			}
			// struct flock: short type, short whence, off_t start, off_t
			// len, pid_t pid (32 bytes with padding).
			b := make([]byte, 32)
			typ := uint32(unix.F_RDLCK)
			if l.Write {
				typ = unix.F_WRLCK
			}
			b[0], b[1] = byte(typ), byte(typ>>8)
			putLE64(b[8:], uint64(l.Start))
			putLE64(b[16:], uint64(l.Len))
			addr, err := t.Scratch(b)
			if err != nil {
				return err
			}
			cmd := uint64(unix.F_SETLK)
			if l.Kind == "ofd" {
				cmd = unix.F_OFD_SETLK
			}
			if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), cmd, addr); err != nil {
				return fmt.Errorf("%s lock [%d, +%d): %w", l.Kind, l.Start, l.Len, err)
			}
		}
	}
	return nil
}

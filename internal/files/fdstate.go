package files

import (
	"errors"
	"fmt"
	"os"
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
	// One being broken ("LEASE BREAKING READ|UNLCK") had the type the
	// description's access mode allows (F_GETLEASE says the target type
	// now): restart sets that and starts the break again.
	breaking := false
	for _, line := range fd.Info.Locks {
		lf := strings.Fields(line)
		if len(lf) < 4 || lf[1] != "LEASE" || lf[2] == "ACTIVE" {
			continue
		}
		to := map[string]string{"READ": "read", "UNLCK": "unlock"}[lf[3]]
		if lf[2] != "BREAKING" || to == "" {
			return &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("a lease in state %s %s, on %s", lf[2], lf[3], fd.Link.Path)}
		}
		f.Locks = append(f.Locks, ckpt.FileLock{Kind: "lease", Write: fd.Info.Flags&unix.O_ACCMODE != unix.O_RDONLY, BreakTo: to})
		breaking = true
	}
	if fileType(&fd.Stat) == unix.S_IFREG && !breaking {
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
			if l.BreakTo != "" {
				if err := breakLease(t, fd, l.BreakTo); err != nil {
					return fmt.Errorf("lease: breaking it again: %w", err)
				}
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

// breakLease starts breaking the lease on t's fd again, as the open that
// was breaking it did: an open of the file for writing breaks a lease to
// unlock, one for reading a write lease to read. crsub opens it, through a
// copy of the fd, without blocking: the open fails, the break goes on.
func breakLease(t Target, fd int, to string) error {
	// The break signals the lease's owner, which had its signal for this
	// break before the checkpoint: the new one goes to the task itself,
	// which takes it unseen, and the owner is set back after.
	owner := make([]byte, 8) // struct f_owner_ex
	ownerAddr, err := t.Scratch(owner)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_GETOWN_EX, ownerAddr); err != nil {
		return fmt.Errorf("F_GETOWN_EX: %w", err)
	}
	if owner, err = t.ReadScratch(8); err != nil {
		return err
	}
	self, err := t.Syscall(unix.SYS_GETPID)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETOWN, self); err != nil {
		return fmt.Errorf("F_SETOWN: %w", err)
	}
	if err := startBreak(t, fd, to); err != nil {
		return err
	}
	addr, err := t.Scratch(owner)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETOWN_EX, addr); err != nil {
		return fmt.Errorf("F_SETOWN_EX: %w", err)
	}
	return nil
}

// startBreak opens the file of t's fd so that its lease breaks, and takes
// the signal the break sends t.
func startBreak(t Target, fd int, to string) error {
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	defer local.Close()
	flags := unix.O_RDONLY
	if to == "unlock" {
		flags = unix.O_WRONLY
	}
	b, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", local.Fd()), flags|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(b)
		return fmt.Errorf("the open meant to break it succeeded: no lease to break")
	}
	if err != unix.EWOULDBLOCK {
		return os.NewSyscallError("open", err)
	}
	sig, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_GETSIG)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = uint64(unix.SIGIO)
	}
	wait := make([]byte, 8+16) // the sigset, then a zero timespec
	putLE64(wait, 1<<(sig-1))
	addr, err := t.Scratch(wait)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_RT_SIGTIMEDWAIT, addr, 0, addr+8, 8); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("taking the break's signal: %w", err)
	}
	return nil
}

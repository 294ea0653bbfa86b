package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A pseudo-terminal whose master the tree holds (a terminal emulator, tmux,
// script, expect, sshd's session) is the tree's own: restart makes a new
// pair and gives its master and slave descriptions the fds of the old
// ones, with the slave's settings (termios, window size) and the master's
// lock and packet mode. A slave whose master is outside the tree is a
// terminal of someone else's and stays external (see charDevKind). The new
// pair has another /dev/pts number; programs hold the fds. What was queued
// in either direction is dropped, with a warning.
var ptyKind = &Kind{
	Files: []string{ckpt.FilePtyMaster, ckpt.FilePtySlave},
	Claims: func(c *DumpContext, fd *Fd) bool {
		if _, ok := PtyIndexOfMaster(fd); ok {
			return true
		}
		return fileType(&fd.Stat) == unix.S_IFCHR && c.InternalPtySlave(fd.Stat.Rdev)
	},
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		if index, ok := PtyIndexOfMaster(fd); ok {
			return dumpPtyEnd(c, fd, index, true)
		}
		index, _ := ptySlaveIndex(fd.Stat.Rdev)
		return dumpPtyEnd(c, fd, index, false)
	},
	Restore: restorePtyEnd,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypePty: restorePty},
}

// ptmxRdev is /dev/ptmx's device number.
var ptmxRdev = unix.Mkdev(5, 2)

// termios2Size is sizeof(struct termios2) on x86_64 (TCGETS2).
const termios2Size = 44

// PtyIndexOfMaster returns the pty number of a master fd (/dev/ptmx) of
// the tree, from its copy; ok is false for any other fd.
func PtyIndexOfMaster(fd *Fd) (index int, ok bool) {
	if fileType(&fd.Stat) != unix.S_IFCHR || fd.Stat.Rdev != ptmxRdev {
		return 0, false
	}
	n, err := unix.IoctlGetUint32(int(fd.Copy.Fd()), unix.TIOCGPTN)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// ptySlaveIndex returns the pty number of a Unix98 pty slave device.
func ptySlaveIndex(rdev uint64) (int, bool) {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	if major < 136 || major > 143 {
		return 0, false
	}
	return int((major-136)*256 + minor), true
}

// InternalPtySlave says whether rdev is the slave of a pty whose master
// the tree holds.
func (c *DumpContext) InternalPtySlave(rdev uint64) bool {
	idx, ok := ptySlaveIndex(rdev)
	return ok && c.PtyMasters[idx] != nil
}

// dumpPtyEnd writes the file record of a master or slave description of
// pty index, after the pty's object if it is the first.
func dumpPtyEnd(c *DumpContext, fd *Fd, index int, master bool) (ckpt.Objref, error) {
	ptyRef, ok := c.Ptys[index]
	if !ok {
		var err error
		if ptyRef, err = dumpPty(c, c.PtyMasters[index], index); err != nil {
			return 0, fmt.Errorf("pty %d: %w", index, err)
		}
		c.Ptys[index] = ptyRef
	}
	f := ckpt.File{Kind: ckpt.FilePtySlave, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Rdev: fd.Stat.Rdev, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}}
	if master {
		f.Kind = ckpt.FilePtyMaster
	}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, []ckpt.Objref{ptyRef}, &f)
}

// dumpPty writes the pty object: the slave's settings, read through a
// slave description crsub opens from the master for the purpose.
func dumpPty(c *DumpContext, master *Fd, index int) (ckpt.Objref, error) {
	m := int(master.Copy.Fd())
	p := ckpt.Pty{Index: index, Termios: make([]byte, termios2Size)}
	if v, err := unix.IoctlGetInt(m, unix.TIOCGPTLCK); err == nil {
		p.Locked = v != 0
	}
	// A locked pty (unlockpt not called yet) opens no slave: unlocked for
	// the moment it takes, while the tree is frozen.
	if p.Locked {
		if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
			return 0, fmt.Errorf("unlocking: %w", err)
		}
	}
	s, err := ptyPeer(m)
	if p.Locked {
		if lerr := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 1); lerr != nil && err == nil {
			s.Close()
			err = fmt.Errorf("locking again: %w", lerr)
		}
	}
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if err := ioctlPtr(int(s.Fd()), unix.TCGETS2, unsafe.Pointer(&p.Termios[0])); err != nil {
		return 0, fmt.Errorf("TCGETS2: %w", err)
	}
	ws, err := unix.IoctlGetWinsize(int(s.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, fmt.Errorf("TIOCGWINSZ: %w", err)
	}
	p.Rows, p.Cols, p.XPixel, p.YPixel = ws.Row, ws.Col, ws.Xpixel, ws.Ypixel
	if v, err := unix.IoctlGetInt(m, unix.TIOCGPKT); err == nil {
		p.Packet = v != 0
	}
	if c.Log != nil {
		in, _ := unix.IoctlGetInt(int(s.Fd()), unix.TIOCINQ)
		out, _ := unix.IoctlGetInt(m, unix.TIOCINQ)
		if in > 0 || out > 0 {
			c.Log.Warn("bytes queued in a pty are not kept", "pty", index, "to-slave", in, "to-master", out)
		}
	}
	ref := c.W.NewObjref()
	return ref, c.W.Write(ckpt.TypePty, ref, nil, &p)
}

// ptyPeer opens a slave description of the pty whose master is m
// (TIOCGPTPEER), not becoming its controlling terminal.
func ptyPeer(m int) (*os.File, error) {
	fd, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK))
	if e != 0 {
		return nil, fmt.Errorf("TIOCGPTPEER: %w", e)
	}
	return os.NewFile(fd, "pty slave"), nil
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// restorePty makes a new pty pair inside t with the image's settings. Its
// master and slave wait, held, for the file records of their descriptions
// (as a pipe's ends do: master as Read, slave as Write).
func restorePty(c *RestoreContext, t Target, rec *ckpt.Record) (err error) {
	var p ckpt.Pty
	if err := rec.Decode(&p); err != nil {
		return err
	}
	if len(p.Termios) != termios2Size {
		return fmt.Errorf("pty %d: %d bytes of termios, want %d", p.Index, len(p.Termios), termios2Size)
	}
	master, err := t.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pty %d: open /dev/ptmx: %w", p.Index, err)
	}
	slave := -1
	defer func() {
		if err != nil {
			for _, fd := range []int{master, slave} {
				if fd >= 0 {
					_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
				}
			}
			err = fmt.Errorf("pty %d: %w", p.Index, err)
		}
	}()
	ioctl := func(fd int, req uint, arg uint64, what string) error {
		if _, err := t.Syscall(unix.SYS_IOCTL, uint64(fd), uint64(req), arg); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := IoctlSetInt(t, master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlocking: %w", err)
	}
	s, err := t.Syscall(unix.SYS_IOCTL, uint64(master), unix.TIOCGPTPEER, uint64(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if err != nil {
		return fmt.Errorf("opening the slave (TIOCGPTPEER): %w", err)
	}
	slave = int(s)
	addr, err := t.Scratch(p.Termios)
	if err != nil {
		return err
	}
	if err := ioctl(slave, unix.TCSETS2, addr, "terminal settings (TCSETS2)"); err != nil {
		return err
	}
	ws := make([]byte, 8)
	for i, v := range []uint16{p.Rows, p.Cols, p.XPixel, p.YPixel} {
		binary.LittleEndian.PutUint16(ws[2*i:], v)
	}
	if addr, err = t.Scratch(ws); err != nil {
		return err
	}
	if err := ioctl(slave, unix.TIOCSWINSZ, addr, "window size"); err != nil {
		return err
	}
	for _, set := range []struct {
		on   bool
		req  uint
		what string
	}{{p.Packet, unix.TIOCPKT, "packet mode"}, {p.Locked, unix.TIOCSPTLCK, "locking"}} {
		if !set.on {
			continue
		}
		if err := IoctlSetInt(t, master, set.req, 1); err != nil {
			return fmt.Errorf("%s: %w", set.what, err)
		}
	}
	rp := &RestoredPipe{Pid: t.Pid(), Read: master, Write: slave}
	c.Pipes[rec.Objref] = rp
	t.Hold(&rp.Read)
	t.Hold(&rp.Write)
	return nil
}

// restorePtyEnd takes a master or slave description from the pair
// restorePty made, as a pipe end is taken: the master as its read end.
func restorePtyEnd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	pf := *f
	pf.PipeEnd = "write"
	if f.Kind == ckpt.FilePtyMaster {
		pf.PipeEnd = "read"
	}
	fd, err := restorePipeEnd(c, t, rec, &pf)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", f.Kind, err)
	}
	return fd, nil
}

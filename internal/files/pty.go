package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A pseudo-terminal whose master the tree holds (a terminal emulator, tmux,
// script, expect, sshd's session) is the tree's own: restart makes a new
// pair and gives its master and slave descriptions the fds of the old
// ones, with the slave's settings (termios, window size), its owner and
// mode, the master's lock and packet mode, and what was queued in either
// direction. A pty whose master was closed is the tree's too: its slaves
// are hung up, and restart hangs up the new ones the same way. A slave
// whose master is held outside the tree is a terminal of someone else's
// and stays external (see charDevKind). The new pair has another /dev/pts
// number; programs hold the fds.
//
// Restart opens the new slave only if the tree held one, or every slave
// had been closed (then it closes it again): a master whose slave is
// closed reads EIO and polls POLLHUP, one whose slave was never opened
// waits, and a program polling it must find it as it was.
var ptyKind = &Kind{
	Files: []string{ckpt.FilePtyMaster, ckpt.FilePtySlave},
	Claims: func(c *DumpContext, fd *Fd) bool {
		if _, ok := PtyIndexOfMaster(fd); ok {
			return true
		}
		if fileType(&fd.Stat) != unix.S_IFCHR {
			return false
		}
		idx, ok := ptySlaveIndex(fd.Stat.Rdev)
		return ok && (c.PtyMasters[idx] != nil || hungUp(fd))
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

// hungUp says whether a terminal fd was hung up (its pty's master
// closed): every ioctl on it fails with EIO.
func hungUp(fd *Fd) bool {
	_, err := unix.IoctlGetTermios(int(fd.Copy.Fd()), unix.TCGETS)
	return errors.Is(err, unix.EIO)
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

// PtyIndexOfSlave returns the pty number of a pty slave fd; ok is false
// for any other fd.
func PtyIndexOfSlave(fd *Fd) (index int, ok bool) {
	if fd.Link.Kind != procfs.FdFile || fileType(&fd.Stat) != unix.S_IFCHR {
		return 0, false
	}
	return ptySlaveIndex(fd.Stat.Rdev)
}

// PtySlaveIndex returns the pty number of a Unix98 pty slave device.
func PtySlaveIndex(rdev uint64) (int, bool) { return ptySlaveIndex(rdev) }

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
		if ptyRef, err = dumpPty(c, index); err != nil {
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

// dumpPty writes the pty object. Everything is read through the fds the
// tree holds: the kernel answers a master's terminal ioctls (termios,
// window size) for its slave, and a slave crsub opened itself would, once
// closed, leave the master as if the program's slave had been closed.
func dumpPty(c *DumpContext, index int) (ckpt.Objref, error) {
	master, slave := c.PtyMasters[index], c.PtySlaves[index]
	p := ckpt.Pty{Index: index, HasSlave: slave != nil, MasterClosed: master == nil}
	if slave != nil {
		p.SlaveOwner = &ckpt.PtyOwner{UID: slave.Stat.Uid, GID: slave.Stat.Gid, Mode: slave.Stat.Mode & 0o7777}
	}
	ref := c.W.NewObjref()
	if master == nil {
		return ref, c.W.Write(ckpt.TypePty, ref, nil, &p)
	}
	m := int(master.Copy.Fd())
	p.Termios = make([]byte, termios2Size)
	if v, err := unix.IoctlGetInt(m, unix.TIOCGPTLCK); err == nil {
		p.Locked = v != 0
	}
	if err := ioctlPtr(m, unix.TCGETS2, unsafe.Pointer(&p.Termios[0])); err != nil {
		return 0, fmt.Errorf("TCGETS2: %w", err)
	}
	ws, err := unix.IoctlGetWinsize(m, unix.TIOCGWINSZ)
	if err != nil {
		return 0, fmt.Errorf("TIOCGWINSZ: %w", err)
	}
	p.Rows, p.Cols, p.XPixel, p.YPixel = ws.Row, ws.Col, ws.Xpixel, ws.Ypixel
	if v, err := unix.IoctlGetInt(m, unix.TIOCGPKT); err == nil {
		p.Packet = v != 0
	}
	if slave == nil {
		p.SlaveClosed = pollHup(m)
	} else {
		// Taking the queues empties them: they are put back if the
		// processes run on.
		s := int(slave.Copy.Fd())
		p.ToSlave = drainTty(s, false)
		p.ToMaster = drainTty(m, p.Packet)
		if len(p.ToSlave) > 0 || len(p.ToMaster) > 0 {
			termios := p.Termios
			c.OnRelease = append(c.OnRelease, func() {
				if err := refill(localTty{}, m, s, termios, p.ToSlave, p.ToMaster); err != nil && c.Log != nil {
					c.Log.Warn("bytes queued in a pty not put back", "pty", index, "err", err)
				}
			})
		}
	}
	return ref, c.W.Write(ckpt.TypePty, ref, nil, &p)
}

// pollHup says whether fd polls POLLHUP: a master whose slaves are all
// closed.
func pollHup(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1 && fds[0].Revents&unix.POLLHUP != 0
}

// maxTtyQueue bounds what is read from a terminal's queue: a pty buffers
// 4 KiB a direction (N_TTY_BUF_SIZE), more in flip buffers.
const maxTtyQueue = 64 << 10

// drainTty reads what fd has to read, without blocking whatever its flags:
// only while poll says there is something. In packet mode (a master) each
// read starts with a status byte, dropped.
func drainTty(fd int, packet bool) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for len(out) < maxTtyQueue {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 0); err != nil || n != 1 || fds[0].Revents&unix.POLLIN == 0 {
			break
		}
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		b := buf[:n]
		if packet {
			if b[0] != 0 { // TIOCPKT_DATA is 0; anything else is a status packet
				continue
			}
			b = b[1:]
		}
		out = append(out, b...)
	}
	return out
}

// ttyIO is where a pty is refilled: crsub's own fds on the original
// (putting back what a checkpoint took) or a restored task's.
type ttyIO interface {
	setTermios(fd int, termios []byte) error
	write(fd int, b []byte) error
	inq(fd int) (int, error)
}

// refill queues toSlave for the slave to read and toMaster for the master,
// with echo and output processing off so that the bytes arrive once and as
// they were read, then gives the slave its settings back once its line
// discipline (which works behind the write) has taken what was written.
func refill(io ttyIO, master, slave int, termios, toSlave, toMaster []byte) error {
	if err := io.setTermios(master, quietTermios(termios)); err != nil {
		return fmt.Errorf("terminal settings (TCSETS2): %w", err)
	}
	if err := io.write(master, toSlave); err != nil {
		return fmt.Errorf("queueing %d bytes for the slave: %w", len(toSlave), err)
	}
	if err := io.write(slave, toMaster); err != nil {
		return fmt.Errorf("queueing %d bytes for the master: %w", len(toMaster), err)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n, err := io.inq(slave); err != nil || n >= len(toSlave) {
			break
		}
	}
	if err := io.setTermios(master, termios); err != nil {
		return fmt.Errorf("terminal settings (TCSETS2): %w", err)
	}
	return nil
}

// quietTermios is termios2 t with echo (ECHO, ECHONL) and output
// processing (OPOST) off.
func quietTermios(t []byte) []byte {
	q := append([]byte(nil), t...)
	le := binary.LittleEndian
	le.PutUint32(q[4:], le.Uint32(q[4:])&^unix.OPOST)
	le.PutUint32(q[12:], le.Uint32(q[12:])&^(unix.ECHO|unix.ECHONL))
	return q
}

// localTty is ttyIO on crsub's own fds.
type localTty struct{}

func (localTty) setTermios(fd int, termios []byte) error {
	return ioctlPtr(fd, unix.TCSETS2, unsafe.Pointer(&termios[0]))
}

func (localTty) write(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (localTty) inq(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.TIOCINQ) }

// targetTty is ttyIO on a restored task's fds.
type targetTty struct{ t Target }

func (x targetTty) setTermios(fd int, termios []byte) error {
	addr, err := x.t.Scratch(termios)
	if err != nil {
		return err
	}
	_, err = x.t.Syscall(unix.SYS_IOCTL, uint64(fd), unix.TCSETS2, addr)
	return err
}

func (x targetTty) write(fd int, b []byte) error {
	for len(b) > 0 {
		chunk := b[:min(len(b), 4096)]
		addr, err := x.t.Scratch(chunk)
		if err != nil {
			return err
		}
		n, err := x.t.Syscall(unix.SYS_WRITE, uint64(fd), addr, uint64(len(chunk)))
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (x targetTty) inq(fd int) (int, error) {
	addr, err := scratchInt(x.t, 0)
	if err != nil {
		return 0, err
	}
	if _, err := x.t.Syscall(unix.SYS_IOCTL, uint64(fd), unix.TIOCINQ, addr); err != nil {
		return 0, err
	}
	b, err := x.t.ReadScratch(4)
	if err != nil {
		return 0, err
	}
	return int(int32(binary.LittleEndian.Uint32(b))), nil
}

// openPtmx opens a new pty pair's master in t: the one of pty index made
// with its mount namespace, if one was (RestoreContext.PtyMaster), or a
// new one of t's /dev/ptmx.
func openPtmx(c *RestoreContext, t Target, index int) (int, error) {
	if c.PtyMaster != nil && c.Take != nil {
		if f := c.PtyMaster(t, index); f != nil {
			defer f.Close()
			fd, err := c.Take(int(f.Fd()), t)
			if err != nil {
				return -1, fmt.Errorf("taking its master, made with its mount namespace: %w", err)
			}
			return fd, nil
		}
	}
	fd, err := t.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	return fd, nil
}

// restorePty makes a new pty pair inside t with the image's settings. Its
// master and slave wait, held, for the file records of their descriptions
// (as a pipe's ends do: master as Read, slave as Write).
func restorePty(c *RestoreContext, t Target, rec *ckpt.Record) (err error) {
	var p ckpt.Pty
	if err := rec.Decode(&p); err != nil {
		return err
	}
	if !p.MasterClosed && len(p.Termios) != termios2Size {
		return fmt.Errorf("pty %d: %d bytes of termios, want %d", p.Index, len(p.Termios), termios2Size)
	}
	master, err := openPtmx(c, t, p.Index)
	if err != nil {
		return fmt.Errorf("pty %d: %w", p.Index, err)
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
	addr, err := scratchInt(t, 0)
	if err != nil {
		return err
	}
	if err := ioctl(master, unix.TIOCGPTN, addr, "its number (TIOCGPTN)"); err != nil {
		return err
	}
	n, err := t.ReadScratch(4)
	if err != nil {
		return err
	}
	path := fmt.Sprintf("/dev/pts/%d", binary.LittleEndian.Uint32(n))
	if !p.MasterClosed {
		// Through the master: the kernel sets its slave's.
		if addr, err = t.Scratch(p.Termios); err != nil {
			return err
		}
		if err := ioctl(master, unix.TCSETS2, addr, "terminal settings (TCSETS2)"); err != nil {
			return err
		}
		ws := make([]byte, 8)
		for i, v := range []uint16{p.Rows, p.Cols, p.XPixel, p.YPixel} {
			binary.LittleEndian.PutUint16(ws[2*i:], v)
		}
		if addr, err = t.Scratch(ws); err != nil {
			return err
		}
		if err := ioctl(master, unix.TIOCSWINSZ, addr, "window size"); err != nil {
			return err
		}
	}
	if p.HasSlave || p.SlaveClosed {
		s, err := t.Syscall(unix.SYS_IOCTL, uint64(master), unix.TIOCGPTPEER, uint64(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
		if err != nil {
			return fmt.Errorf("opening the slave (TIOCGPTPEER): %w", err)
		}
		slave = int(s)
	}
	if o := p.SlaveOwner; o != nil && slave >= 0 {
		// By crsub, on its copy: the owner is as crsub's user namespace
		// sees it, which a process in another could not name.
		f, err := t.Copy(slave)
		if err != nil {
			return fmt.Errorf("owner of %s: %w", path, err)
		}
		err = os.NewSyscallError("fchown", unix.Fchown(int(f.Fd()), int(o.UID), int(o.GID)))
		if err == nil {
			err = os.NewSyscallError("fchmod", unix.Fchmod(int(f.Fd()), o.Mode))
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("owner and mode of %s: %w", path, err)
		}
	}
	if len(p.ToSlave)+len(p.ToMaster) > 0 && slave >= 0 && !p.MasterClosed {
		if err := refill(targetTty{t}, master, slave, p.Termios, p.ToSlave, p.ToMaster); err != nil {
			return err
		}
	}
	if !p.HasSlave && slave >= 0 {
		// Every slave had been closed: so it is again.
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(slave)); err != nil {
			return err
		}
		slave = -1
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
	if c.PtyPaths == nil {
		c.PtyPaths = map[int]string{}
	}
	c.PtyPaths[p.Index] = path
	// A closed master is closed with the task's other held fds, once
	// every slave description has been opened: they are hung up then.
	rp := &RestoredPipe{Pid: t.Pid(), Read: master, Write: slave, ptsPath: path}
	c.Pipes[rec.Objref] = rp
	t.Hold(&rp.Read)
	if slave >= 0 {
		t.Hold(&rp.Write)
	}
	return nil
}

// callIn runs a system call with plain arguments inside t.
func callIn(t Target, nr int, what string, args ...uint64) error {
	if _, err := t.Syscall(nr, args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// restorePtyEnd takes a master or slave description from the pair
// restorePty made, as a pipe end is taken: the master as its read end.
func restorePtyEnd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Kind == ckpt.FilePtySlave {
		for _, d := range rec.Deps {
			if p, ok := c.Pipes[d]; ok && p.ptsPath != "" && (p.described[1] || p.Write < 0) {
				// Another description of the slave (it was opened twice):
				// a new open of the new slave.
				fd, err := t.Open(p.ptsPath, reopenFlags(f.Flags)|unix.O_NOCTTY, 0)
				if err != nil {
					return -1, fmt.Errorf("%s: open %s: %w", f.Kind, p.ptsPath, err)
				}
				return fd, nil
			}
		}
	}
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

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

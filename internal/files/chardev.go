package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// isTerminal recognises terminals by device number: their other side (a
// terminal emulator, sshd, a serial line) is never part of a checkpoint.
func isTerminal(rdev uint64) bool {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	switch {
	case major == 4: // virtual consoles and serial ttys
		return true
	case major == 5 && minor <= 2: // /dev/tty, /dev/console, /dev/ptmx
		return true
	case major >= 136 && major <= 143: // pseudo-terminal slaves
		return true
	}
	return false
}

// KernelTerminal recognises the terminals that are devices of the kernel's
// own rather than one end of a pty: the console and the virtual consoles
// and serial lines. Opening their path again gives the same terminal, as
// CRIU does; a session whose controlling terminal one of them is gets it
// back (ckpt.Ctty), as a session on a pty of the tree does.
func KernelTerminal(rdev uint64) bool {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return major == 4 || (major == 5 && minor == 1)
}

// devTty is /dev/tty, which opens the caller's controlling terminal.
var devTty = unix.Mkdev(5, 0)

// cttyInside says whether pid's controlling terminal is a pty the tree
// holds.
func (c *DumpContext) cttyInside(pid int) bool {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.TtyNr == 0 {
		return false
	}
	return c.InternalPtySlave(TtyDevice(st.TtyNr))
}

// TtyDevice decodes /proc/PID/stat's tty_nr into a device number.
func TtyDevice(ttyNr int) uint64 {
	n := uint32(ttyNr)
	return unix.Mkdev((n>>8)&0xfff, (n&0xff)|((n>>12)&0xfff00))
}

// cttyKind reopens /dev/tty, the controlling terminal, once the session
// has its pty back: an fd on /dev/tty of a process whose controlling
// terminal is a pty the tree holds.
var cttyKind = &Kind{
	Files: []string{ckpt.FileCtty},
	Claims: func(c *DumpContext, fd *Fd) bool {
		return isCharDev(fd) && fd.Stat.Rdev == devTty && c.cttyInside(fd.Pid)
	},
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		f := charDevFile(fd)
		f.Kind = ckpt.FileCtty
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		flags := reopenFlags(f.Flags)
		return openLater(c, t, rec.Objref, func(t Target) (int, error) {
			fd, err := t.Open("/dev/tty", flags|unix.O_CLOEXEC, 0)
			if err != nil {
				return -1, fmt.Errorf("open /dev/tty: %w", err)
			}
			return fd, nil
		})
	},
}

func isCharDev(fd *Fd) bool {
	return fd.Link.Kind == procfs.FdFile && fileType(&fd.Stat) == unix.S_IFCHR
}

func charDevFile(fd *Fd) ckpt.File {
	return ckpt.File{Kind: ckpt.FileCharDev, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Pos: fd.Info.Pos, Mode: fd.Stat.Mode, Rdev: fd.Stat.Rdev, Identity: identityOf(fd.Link.Path, &fd.Stat)}
}

// charDevKind reopens any other character device by path (O_NOCTTY: a
// session gets its controlling terminal back as it had it, not by an open).
// A terminal (ptyKind and cttyKind took the tree's own ptys) is someone
// else's: external, written as a tty record that a substitute restores,
// or a new pty made for it (terminal.go); but the console, a
// virtual console or a serial line is reopened by path (KernelTerminal),
// if its node is still that device.
var charDevKind = &Kind{
	Files:  []string{ckpt.FileCharDev, ckpt.FileTTY},
	Claims: func(_ *DumpContext, fd *Fd) bool { return isCharDev(fd) },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		f := charDevFile(fd)
		var deps []ckpt.Objref
		switch {
		case isTerminal(fd.Stat.Rdev) && !KernelTerminal(fd.Stat.Rdev):
			f.Kind = ckpt.FileTTY
			f.External = true
			f.ExternalReason = "terminal " + fd.Link.Path
			var err error
			if f.Terminal, err = terminalSettings(fd); err != nil && c.Log != nil {
				// A new pty made for it takes the defaults.
				c.Log.Warn("terminal settings not recorded", "pid", fd.Pid, "fd", fd.Num, "err", err)
			}
		case isGhost(fd):
			// A device node whose name was removed: made again.
			f.Deleted = true
			ghost, err := dumpGhost(c, fd)
			if err != nil {
				return 0, err
			}
			deps = append(deps, ghost)
		}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, deps, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		if c.NewTerminalFor(f) {
			return restoreNewTerminal(c, t, f)
		}
		if f.Deleted {
			fd, err := openGhost(c, t, rec, reopenFlags(f.Flags))
			if err != nil {
				return -1, fmt.Errorf("deleted %s: %w", f.Path, err)
			}
			return fd, nil
		}
		var st unix.Stat_t
		if err := unix.Stat(c.hostPath(t, f.Path), &st); err != nil {
			return -1, fmt.Errorf("%s: %w", f.Path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != f.Rdev {
			return -1, fmt.Errorf("%s is no longer the character device %d:%d", f.Path, unix.Major(f.Rdev), unix.Minor(f.Rdev))
		}
		fd, err := t.Open(f.Path, reopenFlags(f.Flags)|unix.O_NOCTTY, 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", f.Path, err)
		}
		return fd, nil
	},
}

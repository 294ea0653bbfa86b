package files

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A terminal whose master is outside the tree (a container's console:
// its runtime's console socket holds the master) is external: a restart
// needs a substitute for it, or, asked to (RestoreContext.NewTerminal,
// CRIU's orphan_pts_master), makes a new pty in the devpts the slave was
// on, numbered as the slave was (the paths the tree holds name it), with
// the settings the checkpoint recorded (terminalSettings), opens the
// slave where the tree had it, and hands the master to whoever is to hold
// it now. The descriptions of one old slave share the new pty.

// terminalSettings reads a pty slave's termios and window size through
// the tree's fd; nil for another terminal.
func terminalSettings(fd *Fd) (*ckpt.TerminalSettings, error) {
	if _, ok := ptySlaveIndex(fd.Stat.Rdev); !ok {
		return nil, nil
	}
	s := &ckpt.TerminalSettings{Termios: make([]byte, termios2Size)}
	f := int(fd.Copy.Fd())
	if err := ioctlPtr(f, unix.TCGETS2, unsafe.Pointer(&s.Termios[0])); err != nil {
		return nil, fmt.Errorf("terminal %s: TCGETS2: %w", fd.Link.Path, err)
	}
	ws, err := unix.IoctlGetWinsize(f, unix.TIOCGWINSZ)
	if err != nil {
		return nil, fmt.Errorf("terminal %s: TIOCGWINSZ: %w", fd.Link.Path, err)
	}
	s.Rows, s.Cols, s.XPixel, s.YPixel = ws.Row, ws.Col, ws.Xpixel, ws.Ypixel
	return s, nil
}

// NewTerminalFor says whether a restart makes a new pty for f, an
// external file of the image.
func (c *RestoreContext) NewTerminalFor(f *ckpt.File) bool {
	if c.NewTerminal == nil || f.Kind != ckpt.FileTTY {
		return false
	}
	_, ok := ptySlaveIndex(f.Rdev)
	return ok
}

// terminalKey names a pty slave of the image: its devpts and number.
type terminalKey struct {
	dev   uint64
	index int
}

// restoreNewTerminal gives t a description of the new pty made for the
// external pty slave f, making the pty the first time.
func restoreNewTerminal(c *RestoreContext, t Target, f *ckpt.File) (int, error) {
	index, _ := ptySlaveIndex(f.Rdev)
	key := terminalKey{f.Identity.Dev, index}
	flags := reopenFlags(f.Flags) | unix.O_NOCTTY
	if c.newTerminals[key] {
		fd, err := t.Open(f.Path, flags, 0)
		if err != nil {
			return -1, fmt.Errorf("new terminal for %s: %w", f.Path, err)
		}
		return fd, nil
	}
	master, err := newPtyMaster(c, t, f, index)
	if err != nil {
		return -1, fmt.Errorf("new terminal for %s (pty %d): %w", f.Path, index, err)
	}
	defer master.Close()
	fd, err := t.Open(f.Path, flags, 0)
	if err != nil {
		return -1, fmt.Errorf("new terminal for %s: %w", f.Path, err)
	}
	if err := c.NewTerminal(master); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("new terminal for %s: handing its master over: %w", f.Path, err)
	}
	if c.newTerminals == nil {
		c.newTerminals = map[terminalKey]bool{}
	}
	c.newTerminals[key] = true
	return fd, nil
}

// newPtyMaster makes pty index of the devpts f was on, as t reaches it,
// with f's settings, unlocked: the one made with t's mount namespace (a
// mount of the slave needed it, as a container's /dev/console), or a new
// one of the devpts at f's directory.
func newPtyMaster(c *RestoreContext, t Target, f *ckpt.File, index int) (*os.File, error) {
	var master *os.File
	if c.PtyMaster != nil {
		master = c.PtyMaster(t, index)
	}
	if master == nil {
		dir := path.Dir(f.Path)
		if _, err := strconv.Atoi(path.Base(f.Path)); err != nil {
			dir = "/dev/pts" // a mount of the slave elsewhere: its devpts is there
		}
		d, err := os.OpenFile(c.hostPath(t, dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		var st unix.Stat_t
		if unix.Fstatat(int(d.Fd()), strconv.Itoa(index), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			return nil, fmt.Errorf("%s/%d exists: the pty is someone else's", dir, index)
		}
		if master, err = sys.OpenPtyIndex(int(d.Fd()), "ptmx", index); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	m := int(master.Fd())
	err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0)
	if err == nil && f.Terminal != nil {
		s := f.Terminal
		if len(s.Termios) != termios2Size {
			err = fmt.Errorf("%d bytes of termios, want %d", len(s.Termios), termios2Size)
		} else if err = ioctlPtr(m, unix.TCSETS2, unsafe.Pointer(&s.Termios[0])); err == nil {
			err = unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: s.Rows, Col: s.Cols, Xpixel: s.XPixel, Ypixel: s.YPixel})
		}
	}
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("settings: %w", err)
	}
	return master, nil
}

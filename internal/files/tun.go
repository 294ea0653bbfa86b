package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A /dev/net/tun description attached to a tun or tap device (TUNSETIFF)
// is recorded with the device's name and the flags it was attached with,
// and whether its queue was detached. The device itself is a link of the
// network namespace's record (internal/ns), made before any file; a
// restart opens /dev/net/tun in the task, in that namespace, and attaches
// it again by name, as CRIU does. A device that was not persistent was made
// persistent by the restart, so that it outlives crsub's own description:
// the first description attached to it makes it not persistent again, as
// it then lives as long as they do. A description not attached is any
// character device's (charDevKind).
var tunKind = &Kind{
	Files: []string{ckpt.FileTun},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		if !isCharDev(fd) || fd.Stat.Rdev != tunRdev {
			return false
		}
		_, _, err := sys.TunGetIff(int(fd.Copy.Fd()))
		return err == nil
	},
	Dump:    dumpTun,
	Restore: restoreTun,
}

// tunRdev is /dev/net/tun's device number, unix.Mkdev(10, 200).
const tunRdev = 10<<8 | 200

func dumpTun(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	name, flags, err := sys.TunGetIff(int(fd.Copy.Fd()))
	if err != nil {
		return 0, err
	}
	if name == "" {
		return 0, errors.New("TUNGETIFF names no device")
	}
	f := charDevFile(fd)
	f.Kind = ckpt.FileTun
	f.Tun = &ckpt.TunFile{Device: name, Flags: flags & sys.TunAttachFlags, Detached: flags&unix.IFF_DETACH_QUEUE != 0, Persist: flags&unix.IFF_PERSIST != 0}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreTun(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Tun == nil {
		return -1, errors.New("a tun file without its device")
	}
	// Opened by the task: the description is of its network namespace,
	// where TUNSETIFF finds the device.
	fd, err := t.Open(f.Path, reopenFlags(f.Flags)|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", f.Path, err)
	}
	if err := attachTun(t, fd, f.Tun); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("tun device %s: %w", f.Tun.Device, err)
	}
	return fd, nil
}

// attachTun attaches the task's fd to its device, through crsub's copy of
// it, detaches its queue if it was, and makes a device that was not
// persistent so again.
func attachTun(t Target, fd int, tf *ckpt.TunFile) error {
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	defer local.Close()
	l := int(local.Fd())
	if err := sys.TunSetIff(l, tf.Device, tf.Flags&sys.TunAttachFlags); err != nil {
		return err
	}
	_, now, err := sys.TunGetIff(l)
	if err != nil {
		return err
	}
	if now&unix.IFF_PERSIST != 0 && !tf.Persist {
		if err := sys.TunSetPersist(l, false); err != nil {
			return err
		}
	}
	if tf.Detached {
		return sys.TunSetQueue(l, unix.IFF_DETACH_QUEUE)
	}
	return nil
}

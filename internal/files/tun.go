package files

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
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
		_, err := tunGetIff(int(fd.Copy.Fd()))
		return err == nil
	},
	Dump:    dumpTun,
	Restore: restoreTun,
}

// tunRdev is /dev/net/tun's device number.
var tunRdev = unix.Mkdev(10, 200)

// tunAttachFlags are the TUNSETIFF flags a description is attached with.
const tunAttachFlags = unix.IFF_TUN | unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// tunIfreq is struct ifreq with the flags member of its union.
type tunIfreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

func (r *tunIfreq) device() string {
	n := 0
	for n < len(r.name) && r.name[n] != 0 {
		n++
	}
	return string(r.name[:n])
}

func tunIoctl(fd int, req uintptr, arg unsafe.Pointer, name string) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return os.NewSyscallError("ioctl("+name+")", errno)
	}
	return nil
}

// tunGetIff is TUNGETIFF: the device fd is attached to and its flags
// (EBADFD: none).
func tunGetIff(fd int) (tunIfreq, error) {
	var r tunIfreq
	err := tunIoctl(fd, unix.TUNGETIFF, unsafe.Pointer(&r), "TUNGETIFF")
	return r, err
}

func dumpTun(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	r, err := tunGetIff(int(fd.Copy.Fd()))
	if err != nil {
		return 0, err
	}
	f := charDevFile(fd)
	f.Kind = ckpt.FileTun
	f.Tun = &ckpt.TunFile{Device: r.device(), Flags: r.flags & tunAttachFlags, Detached: r.flags&unix.IFF_DETACH_QUEUE != 0, Persist: r.flags&unix.IFF_PERSIST != 0}
	if f.Tun.Device == "" {
		return 0, errors.New("TUNGETIFF names no device")
	}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreTun(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Tun == nil {
		return -1, errors.New("a tun file without its device")
	}
	if len(f.Tun.Device) >= unix.IFNAMSIZ {
		return -1, fmt.Errorf("tun device name %q too long", f.Tun.Device)
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
	var r tunIfreq
	copy(r.name[:], tf.Device)
	r.flags = tf.Flags & tunAttachFlags
	if err := tunIoctl(l, unix.TUNSETIFF, unsafe.Pointer(&r), "TUNSETIFF"); err != nil {
		return err
	}
	now, err := tunGetIff(l)
	if err != nil {
		return err
	}
	if now.flags&unix.IFF_PERSIST != 0 && !tf.Persist {
		if err := tunIoctl(l, unix.TUNSETPERSIST, nil, "TUNSETPERSIST"); err != nil {
			return err
		}
	}
	if tf.Detached {
		q := tunIfreq{flags: unix.IFF_DETACH_QUEUE}
		if err := tunIoctl(l, unix.TUNSETQUEUE, unsafe.Pointer(&q), "TUNSETQUEUE"); err != nil {
			return err
		}
	}
	return nil
}

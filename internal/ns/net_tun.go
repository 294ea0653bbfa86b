package ns

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlink"
	"github.com/crsub/crsub/internal/sys"
)

// A tun or tap device cannot be made by netlink: it is made as a program
// makes it, through /dev/net/tun (opened in the namespace, the device is
// made there), with its index (TUNSETIFINDEX, which exists for CRIU), name,
// flags, owner and group, and made persistent so that it outlives crsub's
// description; the generic steps then give it its address, MTU and state.
// A device that was not persistent is made so again by the first
// description of the tree attached to it (files.tunKind), as it then lives
// as long as its descriptions do.

// tunDevice is the tun clone device.
const tunDevice = "/dev/net/tun"

// noID is the kernel's INVALID_UID / INVALID_GID, which IFLA_TUN_OWNER and
// IFLA_TUN_GROUP show for none.
const noID = 0xffffffff

// tunFlags are the flags of TunLink.Flags and TunFile.Flags.
const tunFlags = unix.IFF_TUN | unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// tunLink records a tun device's settings.
func tunLink(t *netlink.TunInfo) *ckpt.TunLink {
	tl := &ckpt.TunLink{Flags: uint16(t.Type), Owner: -1, Group: -1, Persist: t.Persist}
	if !t.PI {
		tl.Flags |= unix.IFF_NO_PI
	}
	if t.VnetHdr {
		tl.Flags |= unix.IFF_VNET_HDR
	}
	if t.MQ {
		tl.Flags |= unix.IFF_MULTI_QUEUE
	}
	if t.Owner != noID {
		tl.Owner = int64(t.Owner)
	}
	if t.Group != noID {
		tl.Group = int64(t.Group)
	}
	return tl
}

// ifreq is struct ifreq with the flags member of its union.
type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// makeTun makes tun device l in the namespace, persistent, then gives it
// its hardware address, MTU and queue length.
func (r *netRestore) makeTun(l ckpt.NetLink) error {
	if l.Tun == nil {
		return fmt.Errorf("a tun device without its settings in the image")
	}
	if len(l.Name) >= unix.IFNAMSIZ {
		return fmt.Errorf("name %q too long", l.Name)
	}
	_, err := sys.InNetNS(r.nsfd, func() (struct{}, error) {
		fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return struct{}{}, &os.PathError{Op: "open", Path: tunDevice, Err: err}
		}
		defer unix.Close(fd)
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETIFINDEX, l.Index); err != nil {
			return struct{}{}, os.NewSyscallError("ioctl(TUNSETIFINDEX)", err)
		}
		var req ifreq
		copy(req.name[:], l.Name)
		req.flags = l.Tun.Flags & tunFlags
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
			return struct{}{}, os.NewSyscallError("ioctl(TUNSETIFF)", errno)
		}
		for _, id := range []struct {
			req uint
			v   int64
			nm  string
		}{{unix.TUNSETOWNER, l.Tun.Owner, "TUNSETOWNER"}, {unix.TUNSETGROUP, l.Tun.Group, "TUNSETGROUP"}} {
			if id.v < 0 {
				continue
			}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(id.req), uintptr(id.v)); errno != 0 {
				return struct{}{}, os.NewSyscallError("ioctl("+id.nm+")", errno)
			}
		}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETPERSIST, 1); errno != 0 {
			return struct{}{}, os.NewSyscallError("ioctl(TUNSETPERSIST)", errno)
		}
		return struct{}{}, nil
	})
	if err != nil {
		return err
	}
	index := int32(l.Index)
	r.undo = append(r.undo, func() error { return ignoreGone(r.inside.DeleteLink(index)) })
	r.index[l.Name] = index
	set := &netlink.LinkRequest{Index: index, MTU: l.MTU, TxQLen: &l.TxQLen}
	if set.Address, err = parseMAC(l.MAC); err != nil {
		return err
	}
	if err := r.inside.SetLink(set); err != nil {
		return fmt.Errorf("setting its address, MTU and queue length: %w", err)
	}
	return nil
}

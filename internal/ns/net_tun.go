package ns

import (
	"fmt"
	"os"

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

// makeTun makes tun device l in the namespace, persistent, then gives it
// its hardware address, MTU and queue length.
func (r *netRestore) makeTun(l ckpt.NetLink) error {
	if l.Tun == nil {
		return fmt.Errorf("a tun device without its settings in the image")
	}
	_, err := sys.InNetNS(r.nsfd, func() (struct{}, error) {
		fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return struct{}{}, &os.PathError{Op: "open", Path: tunDevice, Err: err}
		}
		defer unix.Close(fd)
		if err := sys.TunSetIfindex(fd, int32(l.Index)); err != nil {
			return struct{}{}, err
		}
		if err := sys.TunSetIff(fd, l.Name, l.Tun.Flags&sys.TunAttachFlags); err != nil {
			return struct{}{}, err
		}
		if l.Tun.Owner >= 0 {
			if err := sys.TunSetOwner(fd, uint32(l.Tun.Owner)); err != nil {
				return struct{}{}, err
			}
		}
		if l.Tun.Group >= 0 {
			if err := sys.TunSetGroup(fd, uint32(l.Tun.Group)); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, sys.TunSetPersist(fd, true)
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

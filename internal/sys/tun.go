package sys

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tun driver's ioctls (/dev/net/tun), which x/sys/unix does not wrap.

// TunAttachFlags are the TUNSETIFF flags that say what a device is and how
// a description is attached to it.
const TunAttachFlags = unix.IFF_TUN | unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// tunIfreq is struct ifreq with the flags member of its union.
type tunIfreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

func tunIoctl(fd int, req uint, arg uintptr, name string) error {
	_, err := retry(func() (struct{}, error) {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg); errno != 0 {
			return struct{}{}, errno
		}
		return struct{}{}, nil
	})
	if err != nil {
		return os.NewSyscallError("ioctl("+name+")", err)
	}
	return nil
}

// TunSetIff attaches the /dev/net/tun description fd to device name,
// making it if there is none (TUNSETIFF).
func TunSetIff(fd int, name string, flags uint16) error {
	var r tunIfreq
	if len(name) >= len(r.name) {
		return fmt.Errorf("tun device name %q too long", name)
	}
	copy(r.name[:], name)
	r.flags = flags
	return tunIoctl(fd, unix.TUNSETIFF, uintptr(unsafe.Pointer(&r)), "TUNSETIFF")
}

// TunGetIff is the device fd is attached to and its flags, IFF_PERSIST and
// IFF_DETACH_QUEUE included (TUNGETIFF; EBADFD: none).
func TunGetIff(fd int) (name string, flags uint16, err error) {
	var r tunIfreq
	if err := tunIoctl(fd, unix.TUNGETIFF, uintptr(unsafe.Pointer(&r)), "TUNGETIFF"); err != nil {
		return "", 0, err
	}
	n := 0
	for n < len(r.name) && r.name[n] != 0 {
		n++
	}
	return string(r.name[:n]), r.flags, nil
}

// TunSetQueue attaches or detaches fd's queue of a multi-queue device
// (IFF_ATTACH_QUEUE, IFF_DETACH_QUEUE).
func TunSetQueue(fd int, flags uint16) error {
	r := tunIfreq{flags: flags}
	return tunIoctl(fd, unix.TUNSETQUEUE, uintptr(unsafe.Pointer(&r)), "TUNSETQUEUE")
}

// TunSetIfindex is the index the device TUNSETIFF makes next gets.
func TunSetIfindex(fd int, index int32) error {
	return tunIoctl(fd, unix.TUNSETIFINDEX, uintptr(unsafe.Pointer(&index)), "TUNSETIFINDEX")
}

// TunSetPersist says whether fd's device outlives its last description.
func TunSetPersist(fd int, persist bool) error {
	var v uintptr
	if persist {
		v = 1
	}
	return tunIoctl(fd, unix.TUNSETPERSIST, v, "TUNSETPERSIST")
}

// TunSetOwner and TunSetGroup let a user or group use fd's device.
func TunSetOwner(fd int, uid uint32) error {
	return tunIoctl(fd, unix.TUNSETOWNER, uintptr(uid), "TUNSETOWNER")
}

func TunSetGroup(fd int, gid uint32) error {
	return tunIoctl(fd, unix.TUNSETGROUP, uintptr(gid), "TUNSETGROUP")
}

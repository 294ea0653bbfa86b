package files

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A netlink socket (routing, uevents, audit…) is made again with its
// protocol, bound to its port id and joined to its multicast groups, with
// its options. Messages queued and not read are dropped, with a warning:
// they describe the moment of the checkpoint, which is gone.
var netlinkKind = &Kind{
	Files: []string{ckpt.FileNetlink},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Socket != nil && fd.Socket.Family == unix.AF_NETLINK
	},
	Dump:    dumpNetlink,
	Restore: restoreNetlink,
}

// netlinkOptions are the SOL_NETLINK integer options kept.
var netlinkOptions = []struct {
	name  string
	which int
}{
	{"NETLINK_PKTINFO", unix.NETLINK_PKTINFO},
	{"NETLINK_BROADCAST_ERROR", unix.NETLINK_BROADCAST_ERROR},
	{"NETLINK_NO_ENOBUFS", unix.NETLINK_NO_ENOBUFS},
	{"NETLINK_LISTEN_ALL_NSID", unix.NETLINK_LISTEN_ALL_NSID},
	{"NETLINK_CAP_ACK", unix.NETLINK_CAP_ACK},
	{"NETLINK_EXT_ACK", unix.NETLINK_EXT_ACK},
	{"NETLINK_GET_STRICT_CHK", unix.NETLINK_GET_STRICT_CHK},
}

func dumpNetlink(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	what := fmt.Sprintf("netlink socket:[%d]", fd.Link.Inode)
	sock := &ckpt.Socket{Family: unix.AF_NETLINK, Type: fd.Socket.Type, Protocol: fd.Socket.Protocol, State: "unbound", Options: map[string]int{}}
	sa, err := unix.Getsockname(s)
	if err != nil {
		return 0, fmt.Errorf("%s: getsockname: %w", what, err)
	}
	if nl, ok := sa.(*unix.SockaddrNetlink); ok && nl.Pid != 0 {
		sock.Local, sock.State = strconv.FormatUint(uint64(nl.Pid), 10), "bound"
	}
	if sa, err := unix.Getpeername(s); err == nil {
		if nl, ok := sa.(*unix.SockaddrNetlink); ok && (nl.Pid != 0 || nl.Groups != 0) {
			sock.Peer = fmt.Sprintf("%d:%d", nl.Pid, nl.Groups)
		}
	}
	// Every group, not only the first 32 getsockname shows.
	var words [64]uint32
	size := uint32(unsafe.Sizeof(words))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), unix.SOL_NETLINK, unix.NETLINK_LIST_MEMBERSHIPS,
		uintptr(unsafe.Pointer(&words)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return 0, fmt.Errorf("%s: NETLINK_LIST_MEMBERSHIPS: %w", what, e)
	}
	if size > uint32(unsafe.Sizeof(words)) {
		return 0, fmt.Errorf("%s: member of groups beyond %d", what, 32*len(words))
	}
	for i, w := range words[:size/4] {
		for b := 0; b < 32; b++ {
			if w&(1<<b) != 0 {
				sock.Groups = append(sock.Groups, uint32(32*i+b+1))
			}
		}
	}
	for _, o := range socketOptions {
		if o.level == unix.SOL_SOCKET && (o.name == "SO_RCVBUF" || o.name == "SO_SNDBUF") {
			if v, err := unix.GetsockoptInt(s, o.level, o.opt); err == nil {
				sock.Options[o.name] = v
			}
		}
	}
	for _, o := range netlinkOptions {
		if v, err := unix.GetsockoptInt(s, unix.SOL_NETLINK, o.which); err == nil && v != 0 {
			sock.Options[o.name] = v
		}
	}
	var peek [1]byte
	if n, _, err := unix.Recvfrom(s, peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued netlink messages are not kept", "fd", fd.Num, "protocol", fd.Socket.Protocol)
	}
	f := ckpt.File{Kind: ckpt.FileNetlink, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreNetlink(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil {
		return -1, fmt.Errorf("netlink socket without socket state")
	}
	fdv, err := t.Syscall(unix.SYS_SOCKET, unix.AF_NETLINK, uint64(s.Type|unix.SOCK_CLOEXEC), uint64(s.Protocol))
	if err != nil {
		return -1, fmt.Errorf("netlink socket of protocol %d: %w", s.Protocol, err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("netlink socket of protocol %d: %w", s.Protocol, err)
	}
	for name, v := range s.Options {
		level, opt := unix.SOL_NETLINK, -1
		for _, o := range netlinkOptions {
			if o.name == name {
				opt = o.which
			}
		}
		switch name {
		case "SO_RCVBUF":
			level, opt, v = unix.SOL_SOCKET, unix.SO_RCVBUF, v/2
		case "SO_SNDBUF":
			level, opt, v = unix.SOL_SOCKET, unix.SO_SNDBUF, v/2
		}
		if opt < 0 {
			return fail(fmt.Errorf("unknown option %s in the image", name))
		}
		if err := setsockoptInt(t, fd, level, opt, v); err != nil {
			return fail(fmt.Errorf("setsockopt %s=%d: %w", name, v, err))
		}
	}
	sockaddr := func(pid, groups uint32) []byte {
		b := make([]byte, 12) // struct sockaddr_nl
		binary.LittleEndian.PutUint16(b, unix.AF_NETLINK)
		binary.LittleEndian.PutUint32(b[4:], pid)
		binary.LittleEndian.PutUint32(b[8:], groups)
		return b
	}
	if s.State == "bound" {
		portid, err := strconv.ParseUint(s.Local, 10, 32)
		if err != nil {
			return fail(fmt.Errorf("port id %q: %w", s.Local, err))
		}
		addr, err := t.Scratch(sockaddr(uint32(portid), 0))
		if err == nil {
			_, err = t.Syscall(unix.SYS_BIND, uint64(fd), addr, 12)
		}
		if err != nil {
			return fail(fmt.Errorf("bind to port id %d: %w", portid, err))
		}
	}
	for _, g := range s.Groups {
		if err := setsockoptInt(t, fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(g)); err != nil {
			return fail(fmt.Errorf("joining group %d: %w", g, err))
		}
	}
	if s.Peer != "" {
		var pid, groups uint32
		if _, err := fmt.Sscanf(s.Peer, "%d:%d", &pid, &groups); err != nil {
			return fail(fmt.Errorf("peer %q: %w", s.Peer, err))
		}
		addr, err := t.Scratch(sockaddr(pid, groups))
		if err == nil {
			_, err = t.Syscall(unix.SYS_CONNECT, uint64(fd), addr, 12)
		}
		if err != nil {
			return fail(fmt.Errorf("connect to %s: %w", s.Peer, err))
		}
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

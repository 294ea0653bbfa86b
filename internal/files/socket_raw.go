package files

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A raw IP socket, IPv4 or IPv6, is made again for its protocol with its
// options, bound to its address and connected to its peer if it was.
// Packets queued and not read are dropped, as the network may drop them.
var rawKind = &Kind{
	Files: []string{ckpt.FileRawIP},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_RAW
	},
	Dump: dumpRaw,
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		if f.Socket == nil {
			return -1, fmt.Errorf("raw socket:[%d] without socket state", f.Identity.Inode)
		}
		return newInetSocket(t, f.Socket, f.Flags)
	},
}

func dumpRaw(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: unix.SOCK_RAW, Protocol: fd.Socket.Protocol, State: "unbound"}
	// A raw socket's port is its protocol: only the address says whether
	// it was bound or connected.
	if sa, err := unix.Getsockname(s); err == nil {
		if a := rawAddr(sa); a != "" {
			sock.Local, sock.State = a, "bound"
		}
	}
	if sa, err := unix.Getpeername(s); err == nil {
		if a := rawAddr(sa); a != "" {
			sock.Peer, sock.State = a, "connected"
		}
	}
	readSocketOptions(s, sock)
	if n, err := unix.IoctlGetInt(s, unix.SIOCINQ); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued raw packets are not kept", "fd", fd.Num, "bytes", n)
	}
	f := ckpt.File{Kind: ckpt.FileRawIP, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// rawAddr is a raw socket's address as host:0, or "" if unspecified.
func rawAddr(sa unix.Sockaddr) string {
	ap, err := netip.ParseAddrPort(sockaddrString(sa))
	if err != nil || ap.Addr().IsUnspecified() {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr(), 0).String()
}

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A UDP socket, IPv4 or IPv6, is bound again to its address and, if it was
// connected, connected again to its peer, with its options and its
// shutdown state (sock_diag's INET_DIAG_SHUTDOWN). Datagrams
// queued and not yet read are dropped, as the network may drop them.
var udpKind = &Kind{
	Files: []string{ckpt.FileUDP},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_DGRAM
	},
	Dump:    dumpUDP,
	Restore: restoreUDP,
}

func dumpUDP(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: unix.SOCK_DGRAM, Protocol: fd.Socket.Protocol, State: "unbound", Options: map[string]int{}}
	if sa, err := unix.Getsockname(s); err == nil {
		if local := sockaddrString(sa); local != "" && !isUnboundAddr(local) {
			sock.Local, sock.State = local, "bound"
		}
	}
	if sa, err := unix.Getpeername(s); err == nil {
		sock.Peer, sock.State = sockaddrString(sa), "connected"
	}
	readSocketOptions(s, sock)
	diag, err := c.diag(fd)
	if err != nil {
		return 0, err
	}
	if d, err := diag.InetSocket(sock.Family, sock.Protocol, fd.Link.Inode); err == nil {
		sock.Shutdown = d.Shutdown
	}
	if n, err := unix.IoctlGetInt(s, unix.SIOCINQ); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued UDP datagrams are not kept", "fd", fd.Num, "bytes", n)
	}
	f := ckpt.File{Kind: ckpt.FileUDP, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// isUnboundAddr reports the address getsockname gives a socket never bound.
func isUnboundAddr(a string) bool { return a == "0.0.0.0:0" || a == "[::]:0" }

func restoreUDP(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil {
		return -1, fmt.Errorf("udp socket without socket state")
	}
	fd, err := newInetSocket(t, s, f.Flags)
	if err != nil {
		return -1, err
	}
	if err := shutdownSocket(t, fd, s.Shutdown); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

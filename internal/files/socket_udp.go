package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A UDP socket, IPv4 or IPv6, is bound again to its address and, if it was
// connected, connected again to its peer, with its options. Datagrams
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
	for _, o := range socketOptions {
		if o.level == unix.IPPROTO_TCP {
			continue
		}
		if v, err := unix.GetsockoptInt(s, o.level, o.which); err == nil {
			sock.Options[o.name] = v
		}
	}
	if fd.Socket.Family == unix.AF_INET6 {
		if v, err := unix.GetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil {
			sock.Options["IPV6_V6ONLY"] = v
		}
	}
	readLinger(s, sock.Options)
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
	fdv, err := t.Syscall(unix.SYS_SOCKET, uint64(s.Family), unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, uint64(s.Protocol))
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if err := setSocketOptions(t, fd, s); err != nil {
		return fail(err)
	}
	for _, step := range []struct {
		nr   int
		addr string
		what string
	}{{unix.SYS_BIND, s.Local, "bind"}, {unix.SYS_CONNECT, s.Peer, "connect"}} {
		if step.addr == "" {
			continue
		}
		raw, err := rawSockaddr(s.Family, step.addr)
		if err != nil {
			return fail(err)
		}
		addr, err := t.Scratch(raw)
		if err != nil {
			return fail(err)
		}
		if _, err := t.Syscall(step.nr, uint64(fd), addr, uint64(len(raw))); err != nil {
			return fail(fmt.Errorf("%s %s: %w", step.what, step.addr, err))
		}
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

package files

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// Listening TCP sockets, IPv4 and IPv6, are recreated by address: bound to
// the same address and port with the same options, listening again.
// Connections waiting in the accept queue at checkpoint time are not kept.
// Other sockets are not supported yet and fail the checkpoint by name.
var inetListenKind = &Kind{
	Name: "socket",
	Claims: func(fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM && s.Listening
	},
	Dump:    dumpSocket,
	Restore: restoreInetListen,
}

// otherSocketKind claims every socket no other kind did, to fail the
// checkpoint naming what it is.
var otherSocketKind = &Kind{
	Name:   "unsupported socket",
	Claims: func(fd *Fd) bool { return fd.Link.Kind == procfs.FdSocket },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
		if s := fd.Socket; s != nil {
			what += fmt.Sprintf(", family %d, type %d", s.Family, s.Type)
		}
		return 0, &UnsupportedError{Fd: fd.Num, What: what}
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		return -1, fmt.Errorf("no restorer for this socket")
	},
}

// socketOptions are the integer options kept across a restart.
var socketOptions = []struct {
	name         string
	level, which int
}{
	{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR},
	{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT},
	{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF},
	{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF},
	{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY},
	{"TCP_DEFER_ACCEPT", unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT},
	{"TCP_FASTOPEN", unix.IPPROTO_TCP, unix.TCP_FASTOPEN},
	{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
	{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
	{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
}

func dumpSocket(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	family, typ, proto := fd.Socket.Family, fd.Socket.Type, fd.Socket.Protocol
	what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
	sa, err := unix.Getsockname(s)
	if err != nil {
		return 0, fmt.Errorf("%s: getsockname: %w", what, err)
	}
	backlog := listenBacklog
	if fd.Socket.Backlog > 0 {
		backlog = fd.Socket.Backlog
	}
	sock := &ckpt.Socket{Family: family, Type: typ, Protocol: proto, State: "listen", Local: sockaddrString(sa), Backlog: backlog, Options: map[string]int{}}
	for _, o := range socketOptions {
		v, err := unix.GetsockoptInt(s, o.level, o.which)
		if err != nil {
			continue // not every option exists for every family
		}
		sock.Options[o.name] = v
	}
	if family == unix.AF_INET6 {
		if v, err := unix.GetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil {
			sock.Options["IPV6_V6ONLY"] = v
		}
	}
	readLinger(s, sock.Options)
	f := ckpt.File{Kind: "socket", Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// readLinger records SO_LINGER, which is a struct, in opts.
func readLinger(s int, opts map[string]int) {
	if l, err := unix.GetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && l.Onoff != 0 {
		opts["SO_LINGER"] = int(l.Linger)
	}
}

// setSocketOptions sets the integer options the image recorded for a
// socket (IPV6_V6ONLY too, for IPv6) on a new socket in the target.
func setSocketOptions(t Target, fd int, s *ckpt.Socket) error {
	options := socketOptions
	if s.Family == unix.AF_INET6 {
		options = append(options, struct {
			name         string
			level, which int
		}{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY})
	}
	if v, ok := s.Options["SO_LINGER"]; ok {
		b := make([]byte, 8) // struct linger: int l_onoff, int l_linger
		binary.LittleEndian.PutUint32(b, 1)
		binary.LittleEndian.PutUint32(b[4:], uint32(v))
		addr, err := t.Scratch(b)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), unix.SOL_SOCKET, unix.SO_LINGER, addr, 8); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER=%d: %w", v, err)
		}
	}
	for _, o := range options {
		v, ok := s.Options[o.name]
		if !ok {
			continue
		}
		if o.name == "SO_RCVBUF" || o.name == "SO_SNDBUF" {
			v /= 2 // the kernel doubles what it is given and reports the double
		}
		if err := setsockoptInt(t, fd, o.level, o.which, v); err != nil {
			return fmt.Errorf("setsockopt %s=%d: %w", o.name, v, err)
		}
	}
	return nil
}

// setsockoptInt sets an integer socket option on fd inside the target.
func setsockoptInt(t Target, fd, level, opt, v int) error {
	addr, err := scratchInt(t, v)
	if err != nil {
		return err
	}
	_, err = t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), uint64(level), uint64(opt), addr, 4)
	return err
}

// listenBacklog is used for restored listeners whose backlog the image
// does not have; the kernel caps it at somaxconn anyway.
const listenBacklog = 4096

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return fmt.Sprint(sa)
}

// rawSockaddr encodes host:port as struct sockaddr_in or sockaddr_in6.
func rawSockaddr(family int, addr string) ([]byte, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("socket address %q: %w", addr, err)
	}
	if family == unix.AF_INET {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		a4 := ap.Addr().Unmap().As4()
		copy(b[4:], a4[:])
		return b, nil
	}
	b := make([]byte, 28)
	binary.LittleEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a16 := ap.Addr().As16()
	copy(b[8:], a16[:])
	return b, nil
}

func restoreInetListen(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.State != "listen" {
		return -1, fmt.Errorf("socket:[%d]: no listening socket state in the image", f.Identity.Inode)
	}
	fdv, err := t.Syscall(unix.SYS_SOCKET, uint64(s.Family), uint64(s.Type|unix.SOCK_CLOEXEC), uint64(s.Protocol))
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
	raw, err := rawSockaddr(s.Family, s.Local)
	if err != nil {
		return fail(err)
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw))); err != nil {
		return fail(fmt.Errorf("bind %s: %w", s.Local, err))
	}
	backlog := s.Backlog
	if backlog <= 0 {
		backlog = listenBacklog
	}
	if _, err := t.Syscall(unix.SYS_LISTEN, uint64(fd), uint64(backlog)); err != nil {
		return fail(fmt.Errorf("listen on %s: %w", s.Local, err))
	}
	if f.Flags&unix.O_NONBLOCK != 0 {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
			return fail(err)
		}
	}
	return fd, nil
}

package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"unsafe"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
	"golang.org/x/sys/unix"
)

// What every kind of socket shares: how a socket is told apart, the
// options kept across a restart, addresses, and the bounds on what an
// image holds of a socket.

// SocketInfo is what identifies a socket's kind.
type SocketInfo struct {
	Family, Type, Protocol int
	Listening              bool
	// For a listener: the connections waiting in its accept queue, and
	// its backlog (0 where the kernel does not say).
	AcceptQueue, Backlog int
	// For a TCP socket that does not listen: its TCP state (tcpClose…),
	// and the peer it is connecting or connected to, or was until the
	// connection closed ("" if none).
	TCPState int
	TCPPeer  string
	// NetNS is the inode of the network namespace it is in.
	NetNS uint64
}

// ExamineSocket fills fd.Socket from the copy of a socket fd.
func (c *DumpContext) ExamineSocket(fd *Fd) error {
	s := int(fd.Copy.Fd())
	var info SocketInfo
	var err error
	if info.Family, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return fmt.Errorf("socket:[%d]: SO_DOMAIN: %w", fd.Link.Inode, err)
	}
	if info.Type, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return fmt.Errorf("socket:[%d]: SO_TYPE: %w", fd.Link.Inode, err)
	}
	if info.Protocol, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return fmt.Errorf("socket:[%d]: SO_PROTOCOL: %w", fd.Link.Inode, err)
	}
	listening, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("socket:[%d]: SO_ACCEPTCONN: %w", fd.Link.Inode, err)
	}
	info.Listening = listening == 1
	if info.NetNS, err = socketNetNS(s); err != nil {
		return fmt.Errorf("socket:[%d]: %w", fd.Link.Inode, err)
	}
	if !info.Listening && (info.Family == unix.AF_INET || info.Family == unix.AF_INET6) && info.Type == unix.SOCK_STREAM && info.Protocol == unix.IPPROTO_TCP {
		ti, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return fmt.Errorf("socket:[%d]: TCP_INFO: %w", fd.Link.Inode, err)
		}
		info.TCPState, info.TCPPeer = int(ti.State), peerName(s, info.Family)
	}
	if info.Listening {
		switch {
		case (info.Family == unix.AF_INET || info.Family == unix.AF_INET6) && info.Protocol == unix.IPPROTO_TCP:
			// For a listener TCP_INFO reports the accept queue as
			// "unacked" and the backlog as "sacked".
			ti, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return fmt.Errorf("socket:[%d]: TCP_INFO: %w", fd.Link.Inode, err)
			}
			info.AcceptQueue, info.Backlog = int(ti.Unacked), int(ti.Sacked)
		case info.Family == unix.AF_UNIX:
			fd.Socket = &info
			d, err := c.unixDiag(fd, fd.Link.Inode)
			if err != nil {
				return fmt.Errorf("socket:[%d]: %w", fd.Link.Inode, err)
			}
			info.AcceptQueue = int(d.RQueue)
		}
	}
	fd.Socket = &info
	return nil
}

// AcceptQueueError reports a listening socket with connections the
// process has not accepted yet that cannot be restored: a connection whose
// client is outside the checkpoint (nothing puts a connection back into an
// accept queue, and the client's side is not ours to recreate), or one
// whose client sent data the listener's side holds. A checkpoint lets the
// process run a little to accept them, and fails with this error if they
// stay. (Connections whose client is in the tree and sent nothing are
// connected again at restart: see inflightKind.)
type AcceptQueueError struct {
	Pid, Fd int
	What    string
	Waiting int
	// Why says what keeps one of them from being restored.
	Why string
}

func (e *AcceptQueueError) Error() string {
	msg := fmt.Sprintf("%s: %d connection(s) wait in its accept queue, not accepted by the process; they cannot be restored", e.What, e.Waiting)
	if e.Why != "" {
		msg += " (" + e.Why + ")"
	}
	return msg
}

// CheckAcceptQueue returns an *AcceptQueueError for a listener with
// connections waiting that cannot be restored, and notes in c the clients
// of those that can (c.Inflight). It is called once every fd of the tree
// was examined (c.Sockets is complete).
func CheckAcceptQueue(c *DumpContext, fd *Fd) error {
	if fd.Socket == nil || !fd.Socket.Listening || fd.Socket.AcceptQueue == 0 {
		return nil
	}
	var clients map[uint64]string
	var why string
	var err error
	if fd.Socket.Family == unix.AF_UNIX {
		clients, why, err = unixInflight(c, fd)
	} else {
		clients, why, err = tcpInflight(c, fd)
	}
	if err != nil {
		return err
	}
	if why == "" {
		if c.Inflight == nil {
			c.Inflight = map[uint64]*Inflight{}
		}
		for ino, peer := range clients {
			c.Inflight[ino] = &Inflight{Listener: fd, Peer: peer}
		}
		return nil
	}
	what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
	if sa, err := unix.Getsockname(int(fd.Copy.Fd())); err == nil {
		what = "listening on " + sockaddrString(sa)
	}
	return &AcceptQueueError{Pid: fd.Pid, Fd: fd.Num, What: what, Waiting: fd.Socket.AcceptQueue, Why: why}
}

// otherSocketKind claims every socket no other kind did, to fail the
// checkpoint naming what it is. It writes no file records, so it restores
// none.
var otherSocketKind = &Kind{
	Claims: func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdSocket },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
		if s := fd.Socket; s != nil {
			what += fmt.Sprintf(", family %d, type %d", s.Family, s.Type)
		}
		return 0, &UnsupportedError{Fd: fd.Num, What: what}
	},
}

// sockOpt is an integer socket option kept across a restart, by the name
// the image records it under.
type sockOpt struct {
	name       string
	level, opt int
}

// socketOptions are the integer options kept across a restart, in the order
// a restart sets them: the IP level first (setting IP_TOS may change
// SO_PRIORITY), SO_BUF_LOCK after the buffer sizes (setting a size locks
// it). Each level applies where optionApplies says.
var socketOptions = []sockOpt{
	{"IP_TOS", unix.IPPROTO_IP, unix.IP_TOS},
	{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL},
	{"IP_HDRINCL", unix.IPPROTO_IP, unix.IP_HDRINCL},
	{"IP_FREEBIND", unix.IPPROTO_IP, unix.IP_FREEBIND},
	{"IP_TRANSPARENT", unix.IPPROTO_IP, unix.IP_TRANSPARENT},
	{"IP_PKTINFO", unix.IPPROTO_IP, unix.IP_PKTINFO},
	{"IP_RECVTTL", unix.IPPROTO_IP, unix.IP_RECVTTL},
	{"IP_RECVTOS", unix.IPPROTO_IP, unix.IP_RECVTOS},
	{"IP_RECVERR", unix.IPPROTO_IP, unix.IP_RECVERR},
	{"IP_MTU_DISCOVER", unix.IPPROTO_IP, unix.IP_MTU_DISCOVER},
	{"IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL},
	{"IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP},
	{"IP_BIND_ADDRESS_NO_PORT", unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT},
	{"IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY},
	{"IPV6_FREEBIND", unix.IPPROTO_IPV6, unix.IPV6_FREEBIND},
	{"IPV6_TRANSPARENT", unix.IPPROTO_IPV6, unix.IPV6_TRANSPARENT},
	{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO},
	{"IPV6_TCLASS", unix.IPPROTO_IPV6, unix.IPV6_TCLASS},
	{"IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS},
	{"IPV6_RECVERR", unix.IPPROTO_IPV6, unix.IPV6_RECVERR},
	{"IPV6_MTU_DISCOVER", unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER},
	{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR},
	{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT},
	{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF},
	{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF},
	{"SO_BUF_LOCK", unix.SOL_SOCKET, unix.SO_BUF_LOCK},
	{"SO_PRIORITY", unix.SOL_SOCKET, unix.SO_PRIORITY},
	{"SO_RCVLOWAT", unix.SOL_SOCKET, unix.SO_RCVLOWAT},
	{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK},
	{"SO_PASSCRED", unix.SOL_SOCKET, unix.SO_PASSCRED},
	{"SO_PASSSEC", unix.SOL_SOCKET, unix.SO_PASSSEC},
	{"SO_DONTROUTE", unix.SOL_SOCKET, unix.SO_DONTROUTE},
	{"SO_NO_CHECK", unix.SOL_SOCKET, unix.SO_NO_CHECK},
	{"SO_OOBINLINE", unix.SOL_SOCKET, unix.SO_OOBINLINE},
	{"SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST},
	{"SO_TIMESTAMP", unix.SOL_SOCKET, unix.SO_TIMESTAMP},
	{"SO_TIMESTAMPNS", unix.SOL_SOCKET, unix.SO_TIMESTAMPNS},
	{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY},
	{"TCP_CORK", unix.IPPROTO_TCP, unix.TCP_CORK},
	{"TCP_DEFER_ACCEPT", unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT},
	{"TCP_FASTOPEN", unix.IPPROTO_TCP, unix.TCP_FASTOPEN},
	{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
	{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
	{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
	{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
	{"TCP_SYNCNT", unix.IPPROTO_TCP, unix.TCP_SYNCNT},
	{"TCP_LINGER2", unix.IPPROTO_TCP, unix.TCP_LINGER2},
	{"TCP_NOTSENT_LOWAT", unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT},
	{"TCP_THIN_LINEAR_TIMEOUTS", unix.IPPROTO_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS},
}

// optionApplies says whether an option belongs to a socket of a family,
// type and protocol: the IP level to IPv4 and IPv6 sockets (an IPv6 socket
// has IP_FREEBIND, IP_TOS… too) but multicast to sockets other than
// streams, the IPv6 level to IPv6 sockets, the TCP level to TCP sockets,
// the socket level to all.
func optionApplies(o sockOpt, family, typ, protocol int) bool {
	if strings.HasPrefix(o.name, "IP_MULTICAST_") && typ == unix.SOCK_STREAM {
		return false // getsockopt answers, setsockopt refuses
	}
	if o.name == "IP_HDRINCL" && typ != unix.SOCK_RAW {
		return false // the same (a ping socket)
	}
	switch o.level {
	case unix.IPPROTO_IP:
		return family == unix.AF_INET || family == unix.AF_INET6
	case unix.IPPROTO_IPV6:
		return family == unix.AF_INET6
	case unix.IPPROTO_TCP:
		return (family == unix.AF_INET || family == unix.AF_INET6) && typ == unix.SOCK_STREAM && protocol == unix.IPPROTO_TCP
	}
	return true
}

// readSocketOptions records in sock the options of the socket s (family,
// type and protocol in sock) that differ from a new socket's of the same
// kind, so that a restart sets only what the process changed (some options,
// SO_MARK for one, need privileges even to set their default). The buffer
// sizes bring SO_BUF_LOCK with them, since setting a size locks it. An
// option the kernel does not have for the socket is left out.
func readSocketOptions(s int, sock *ckpt.Socket) {
	if sock.Options == nil {
		sock.Options = map[string]int{}
	}
	// Made in s's network namespace: some defaults are the namespace's
	// settings (the TCP buffer sizes, the TTL, the keepalive times).
	fresh := -1 // without one, every option is recorded
	if f, err := sys.SocketBeside(s, sock.Family, sock.Type, sock.Protocol); err == nil {
		defer f.Close()
		fresh = f.Int()
	}
	values := map[string]int{}
	defaults := map[string]int{}
	for _, o := range socketOptions {
		if !optionApplies(o, sock.Family, sock.Type, sock.Protocol) {
			continue
		}
		v, err := unix.GetsockoptInt(s, o.level, o.opt)
		if err != nil {
			continue // not every option exists for every kind of socket
		}
		values[o.name] = v
		if fresh >= 0 {
			if d, err := unix.GetsockoptInt(fresh, o.level, o.opt); err == nil {
				defaults[o.name] = d
			}
		}
	}
	for name, v := range changedOptions(values, defaults) {
		sock.Options[name] = v
	}
	if l, err := unix.GetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && l.Onoff != 0 {
		sock.Options["SO_LINGER"] = int(l.Linger)
	}
	if dev, err := unix.GetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err == nil {
		sock.Device = dev
	}
	sock.Filter, sock.FilterLocked = socketFilter(s)
	if level, opt, n := icmpFilter(sock); n > 0 {
		b := make([]byte, n)
		if got, err := getsockoptBytes(s, level, opt, b); err == nil && got == n && slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
			sock.ICMPFilter = b
		}
	}
}

// socketFilter reads the classic BPF program attached to a socket
// (SO_GET_FILTER: with no room it says how many instructions it has) and
// whether it is locked.
func socketFilter(s int) ([]byte, bool) {
	var n uint32
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), unix.SOL_SOCKET, unix.SO_GET_FILTER, 0, uintptr(unsafe.Pointer(&n)), 0); e != 0 || n == 0 || n > 4096 {
		return nil, false
	}
	b := make([]byte, 8*n)
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), unix.SOL_SOCKET, unix.SO_GET_FILTER, uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0); e != 0 || int(n)*8 > len(b) {
		return nil, false
	}
	locked, _ := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_LOCK_FILTER)
	return b[:8*n], locked != 0
}

// attachFilter attaches a socket's classic BPF program to fd inside the
// target (struct sock_fprog pointing just after itself in the scratch
// memory), then locks it if it was.
func attachFilter(t Target, fd int, s *ckpt.Socket) error {
	if len(s.Filter) == 0 || len(s.Filter)%8 != 0 {
		return nil
	}
	buf := make([]byte, 16+len(s.Filter))
	at, err := t.Scratch(buf)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(buf, uint16(len(s.Filter)/8))
	binary.LittleEndian.PutUint64(buf[8:], at+16)
	copy(buf[16:], s.Filter)
	addr, err := t.Scratch(buf)
	if err != nil {
		return err
	}
	if addr != at {
		return errors.New("the scratch memory moved")
	}
	if _, err := t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, addr, 16); err != nil {
		return fmt.Errorf("setsockopt SO_ATTACH_FILTER (%d instructions): %w", len(s.Filter)/8, err)
	}
	if s.FilterLocked {
		if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1); err != nil {
			return fmt.Errorf("setsockopt SO_LOCK_FILTER=1: %w", err)
		}
	}
	return nil
}

// icmpFilter gives the level, option and size of a raw ICMP socket's filter
// (ICMP_FILTER, ICMPV6_FILTER), n 0 for other sockets.
func icmpFilter(s *ckpt.Socket) (level, opt, n int) {
	switch {
	case s.Type != unix.SOCK_RAW:
	case s.Family == unix.AF_INET && s.Protocol == unix.IPPROTO_ICMP:
		return unix.SOL_RAW, 1, 4 // ICMP_FILTER, struct icmp_filter
	case s.Family == unix.AF_INET6 && s.Protocol == unix.IPPROTO_ICMPV6:
		return unix.IPPROTO_ICMPV6, 1, 32 // ICMPV6_FILTER, struct icmp6_filter
	}
	return 0, 0, 0
}

// getsockoptBytes reads an option that is a struct into b.
func getsockoptBytes(s, level, opt int, b []byte) (int, error) {
	n := uint32(len(b))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return 0, e
	}
	return int(n), nil
}

// changedOptions returns the options whose value differs from the default
// (all of them where no default is known), with SO_BUF_LOCK whenever a
// buffer size is among them.
func changedOptions(values, defaults map[string]int) map[string]int {
	changed := map[string]int{}
	for name, v := range values {
		if d, ok := defaults[name]; !ok || d != v {
			changed[name] = v
		}
	}
	_, rcv := changed["SO_RCVBUF"]
	_, snd := changed["SO_SNDBUF"]
	if v, ok := values["SO_BUF_LOCK"]; ok && (rcv || snd) {
		changed["SO_BUF_LOCK"] = v
	}
	return changed
}

// setSocketOptions sets the options the image recorded for a socket on a
// new socket in the target, in socketOptions' order, then SO_LINGER,
// SO_BINDTODEVICE, the ICMP filter and the socket filter (locked last). Buffer sizes are forced (SO_RCVBUFFORCE): the recorded
// size may be above what rmem_max lets a process ask for.
func setSocketOptions(t Target, fd int, s *ckpt.Socket) error {
	for _, o := range socketOptions {
		v, ok := s.Options[o.name]
		if !ok {
			continue
		}
		if o.name == "SO_RCVBUF" || o.name == "SO_SNDBUF" {
			v /= 2 // the kernel doubles what it is given and reports the double
			force := unix.SO_RCVBUFFORCE
			if o.name == "SO_SNDBUF" {
				force = unix.SO_SNDBUFFORCE
			}
			if setsockoptInt(t, fd, unix.SOL_SOCKET, force, v) == nil {
				continue
			}
		}
		if err := setsockoptInt(t, fd, o.level, o.opt, v); err != nil {
			return fmt.Errorf("setsockopt %s=%d: %w", o.name, v, err)
		}
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
	if s.Device != "" {
		name := append([]byte(s.Device), 0)
		addr, err := t.Scratch(name)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, addr, uint64(len(name))); err != nil {
			return fmt.Errorf("setsockopt SO_BINDTODEVICE=%s: %w", s.Device, err)
		}
	}
	if level, opt, n := icmpFilter(s); n > 0 && len(s.ICMPFilter) == n {
		addr, err := t.Scratch(s.ICMPFilter)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), uint64(level), uint64(opt), addr, uint64(n)); err != nil {
			return fmt.Errorf("setsockopt of the ICMP filter: %w", err)
		}
	}
	return attachFilter(t, fd, s)
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

// socketWithOptions makes a socket of s's family, type and protocol inside
// t with s's options; on failure nothing is left open.
func socketWithOptions(t Target, s *ckpt.Socket) (int, error) {
	fdv, err := t.Syscall(unix.SYS_SOCKET, uint64(s.Family), uint64(s.Type|unix.SOCK_CLOEXEC), uint64(s.Protocol))
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := int(fdv)
	if err := setSocketOptions(t, fd, s); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

// newInetSocket makes an inet socket of s's family, type and protocol inside
// t with s's options, binds it to s.Local and connects it to s.Peer where
// they are set, and gives it flags' O_NONBLOCK.
func newInetSocket(t Target, s *ckpt.Socket, flags int) (int, error) {
	fd, err := socketWithOptions(t, s)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
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
		_, err = t.Syscall(step.nr, uint64(fd), addr, uint64(len(raw)))
		if errors.Is(err, unix.EADDRNOTAVAIL) && step.nr == unix.SYS_BIND && s.Options["IP_FREEBIND"] == 0 {
			// Bound while IP_FREEBIND was on, turned off since.
			err = bindFreely(t, fd, raw)
		}
		if err != nil {
			return fail(fmt.Errorf("%s %s: %w", step.what, step.addr, err))
		}
	}
	if err := setNonblock(t, fd, flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

// bindFreely binds fd to the address raw that is not local with
// IP_FREEBIND on for the time of the bind.
func bindFreely(t Target, fd int, raw []byte) error {
	if err := setsockoptInt(t, fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1); err != nil {
		return fmt.Errorf("setsockopt IP_FREEBIND=1: %w", err)
	}
	addr, err := t.Scratch(raw)
	if err == nil {
		_, err = t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw)))
	}
	if err2 := setsockoptInt(t, fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 0); err == nil && err2 != nil {
		err = fmt.Errorf("setsockopt IP_FREEBIND=0: %w", err2)
	}
	return err
}

// listenBacklog is used for restored listeners whose backlog the image
// does not have; the kernel caps it at somaxconn anyway.
const listenBacklog = 4096

// peerName is the address an inet socket of family is connected to, as
// host:port, or "" if none. SO_PEERNAME answers where getpeername does
// not: for a TCP connection still in SYN_SENT, or one that closed. (It
// wants room for no more than the family's address.)
func peerName(s, family int) string {
	size := unix.SizeofSockaddrInet4
	if family == unix.AF_INET6 {
		size = unix.SizeofSockaddrInet6
	}
	b := make([]byte, size)
	n, err := getsockoptBytes(s, unix.SOL_SOCKET, unix.SO_PEERNAME, b)
	if err != nil {
		return ""
	}
	return rawSockaddrString(b[:n])
}

// rawSockaddrString decodes struct sockaddr_in or sockaddr_in6 as
// host:port, "" for anything else or port 0.
func rawSockaddrString(b []byte) string {
	if len(b) < 2 {
		return ""
	}
	var ap netip.AddrPort
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return ""
		}
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:]))
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return ""
		}
		ap = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:]))
	default:
		return ""
	}
	if ap.Port() == 0 {
		return ""
	}
	return ap.String()
}

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

// unixSockaddr encodes struct sockaddr_un for a path, or for an abstract
// name written with a leading '@' (as Go and ss print them).
func unixSockaddr(name string) ([]byte, error) {
	path := []byte(name)
	if name[0] == '@' {
		path[0] = 0
	} else {
		path = append(path, 0)
	}
	if len(path) > 108 {
		return nil, fmt.Errorf("unix socket name %q is too long", name)
	}
	b := make([]byte, 2+len(path))
	binary.LittleEndian.PutUint16(b, unix.AF_UNIX)
	copy(b[2:], path)
	// An abstract name's length says where it ends; a path's NUL is in b.
	return b, nil
}

// clearStaleSocket removes a socket file at path, as target t resolves it,
// that nothing listens on any more (the checkpointed process's own, left
// behind when it was killed). Anything else at the path is left alone,
// and bind reports it.
func clearStaleSocket(c *RestoreContext, t Target, path string, typ int) error {
	name, err := c.reachUnix(t, path)
	if err != nil {
		return nil
	}
	defer name.Close()
	s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	// A path is found in any network namespace.
	err = unix.Connect(s, name.Addr)
	if errors.Is(err, unix.ECONNREFUSED) {
		return os.Remove(c.hostPath(t, path))
	}
	if err == nil {
		return fmt.Errorf("%s: another process listens there", path)
	}
	return nil
}

// maxSocketQueue bounds what one queue of a socket (one direction of a
// unix pair, a TCP connection's send or receive queue) may hold in an image.
const maxSocketQueue = 64 << 20

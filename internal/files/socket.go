package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

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
}

// ExamineSocket fills fd.Socket from the copy of a socket fd.
func ExamineSocket(fd *Fd) error {
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
			d, err := sys.UnixSocketDiag(fd.Link.Inode)
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
// process has not accepted yet. They cannot be restored: nothing puts a
// connection back into an accept queue, and the peer's side is not ours to
// recreate. A checkpoint lets the process run a little to accept them, and
// fails with this error if they stay.
type AcceptQueueError struct {
	Pid, Fd int
	What    string
	Waiting int
}

func (e *AcceptQueueError) Error() string {
	return fmt.Sprintf("%s: %d connection(s) wait in its accept queue, not accepted by the process; they cannot be restored", e.What, e.Waiting)
}

// CheckAcceptQueue returns an *AcceptQueueError for a listener with
// connections waiting.
func CheckAcceptQueue(fd *Fd) error {
	if fd.Socket == nil || !fd.Socket.Listening || fd.Socket.AcceptQueue == 0 {
		return nil
	}
	what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
	if sa, err := unix.Getsockname(int(fd.Copy.Fd())); err == nil {
		what = "listening on " + sockaddrString(sa)
	}
	return &AcceptQueueError{Pid: fd.Pid, Fd: fd.Num, What: what, Waiting: fd.Socket.AcceptQueue}
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

// clearStaleSocket removes a socket file at path that nothing listens on
// any more (the checkpointed process's own, left behind when it was
// killed). Anything else at the path is left alone, and bind reports it.
func clearStaleSocket(path string, typ int) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return nil
	}
	s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	err = unix.Connect(s, &unix.SockaddrUnix{Name: path})
	if errors.Is(err, unix.ECONNREFUSED) {
		return os.Remove(path)
	}
	if err == nil {
		return fmt.Errorf("%s: another process listens there", path)
	}
	return nil
}

// maxSocketQueue bounds what one queue of a socket (one direction of a
// unix pair, a TCP connection's send or receive queue) may hold in an image.
const maxSocketQueue = 64 << 20

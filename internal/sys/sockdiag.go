package sys

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/netlink/nlwire"
)

// UnixDiag is what sock_diag says of one unix socket.
type UnixDiag struct {
	Type  int    // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	State int    // TCP_ESTABLISHED (1), TCP_LISTEN (10)…
	Peer  uint64 // the peer's inode, 0 without one
	// RQueue is the bytes queued for reading (for a listener, the
	// pending connections).
	RQueue uint32
	// WQueue is the bytes it sent that its peer has not read (for a
	// listener, its backlog).
	WQueue uint32
	// Icons are, for a listener, the inodes of the sockets whose
	// connections wait in its accept queue (0 for one closed since).
	Icons []uint64
	// Name is the name it is bound to: a path, or an abstract name with
	// a leading '@' (every byte of it, NULs included); empty if it is not
	// bound.
	Name string
	// Shutdown is sk_shutdown: 1 for reading shut down, 2 for writing.
	Shutdown int
}

const (
	sockDiagByFamily = 20
	udiagShowPeer    = 0x4
	udiagShowName    = 0x1
	udiagShowIcons   = 0x8
	unixDiagName     = 0
	udiagShowRqlen   = 0x10
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRqlen    = 4
	unixDiagShutdown = 6
)

// SockDiag is a sock_diag (NETLINK_SOCK_DIAG) connection: it answers
// about the sockets of the network namespace it was made in, and of no
// other (unix and inet sockets alike), so a checkpoint keeps one per
// namespace its sockets are in. Queries are answered one at a time.
type SockDiag struct {
	fd *FD
}

// OpenSockDiag makes a sock_diag connection in the network namespace netns
// (an fd on it), or in the caller's if netns is negative.
func OpenSockDiag(netns int) (*SockDiag, error) {
	open := func() (int, error) {
		fd, err := retry(func() (int, error) {
			return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		})
		if err != nil {
			return -1, os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
		}
		return fd, nil
	}
	var fd int
	var err error
	if netns < 0 {
		fd, err = open()
	} else {
		fd, err = InNetNS(netns, open)
	}
	if err != nil {
		return nil, err
	}
	return &SockDiag{fd: NewFD(fd)}, nil
}

// Close closes the connection.
func (d *SockDiag) Close() error { return d.fd.Close() }

// ask sends a SOCK_DIAG_BY_FAMILY request with flags and body, after
// dropping what an earlier query that failed left unread, and calls
// answer with each batch of the reply until it says the reply is done.
func (d *SockDiag) ask(flags uint16, body []byte, answer func(b []byte) (done bool, err error)) error {
	req := nlwire.AppendMessage(nil, nlwire.Message{Type: sockDiagByFamily, Flags: unix.NLM_F_REQUEST | flags, Data: body}, 0)
	fd := d.fd.Int()
	buf := make([]byte, 65536)
	for {
		_, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil && err != unix.EINTR {
			break
		}
	}
	if err := retryErr(func() error { return unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) }); err != nil {
		return os.NewSyscallError("sendto(sock_diag)", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom(sock_diag)", err)
		}
		done, err := answer(buf[:n])
		if err != nil || done {
			return err
		}
	}
}

// Unix asks about the unix socket with inode ino: its peer and queue
// length, which /proc does not show.
func (d *SockDiag) Unix(ino uint64) (UnixDiag, error) {
	// struct unix_diag_req.
	req := make([]byte, 24)
	le := binary.LittleEndian
	req[0] = unix.AF_UNIX
	le.PutUint32(req[4:], ^uint32(0)) // every state
	le.PutUint32(req[8:], uint32(ino))
	le.PutUint32(req[12:], udiagShowName|udiagShowPeer|udiagShowIcons|udiagShowRqlen)
	le.PutUint32(req[16:], ^uint32(0)) // no cookie
	le.PutUint32(req[20:], ^uint32(0))
	var u UnixDiag
	err := d.ask(0, req, func(b []byte) (bool, error) {
		var err error
		u, err = parseUnixDiag(b, ino)
		return true, err
	})
	return u, err
}

// diagMessages walks the netlink messages of a sock_diag answer b, calling
// each with the payload of every message that is an answer: an
// NLMSG_ERROR that carries an error ends the walk with it (what names the
// query), an NLMSG_DONE ends it with done set, and so does each when it
// says stop.
func diagMessages(b []byte, what string, each func(msg []byte) (stop bool, err error)) (done bool, err error) {
	for m, err := range nlwire.Messages(b) {
		if err != nil {
			return false, fmt.Errorf("sock_diag: %w", err)
		}
		switch m.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return false, fmt.Errorf("sock_diag of %s: %w", what, unix.Errno(-e))
				}
			}
			continue
		case unix.NLMSG_DONE:
			return true, nil
		}
		if stop, err := each(m.Data); stop || err != nil {
			return false, err
		}
	}
	return false, nil
}

// diagAttrs walks the netlink attributes in b, calling each with every
// one's type and value; one whose length does not fit is an error.
func diagAttrs(b []byte, each func(typ uint16, val []byte) error) error {
	for a, err := range nlwire.Attrs(b) {
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		if err := each(a.Type, a.Value); err != nil {
			return err
		}
	}
	return nil
}

// parseUnixDiag reads a sock_diag answer for one unix socket.
func parseUnixDiag(b []byte, ino uint64) (UnixDiag, error) {
	le := binary.LittleEndian
	var d UnixDiag
	answered := false
	_, err := diagMessages(b, fmt.Sprintf("unix socket %d", ino), func(msg []byte) (bool, error) {
		// struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
		if len(msg) < 16 {
			return false, fmt.Errorf("sock_diag: short unix_diag_msg")
		}
		d = UnixDiag{Type: int(msg[1]), State: int(msg[2])}
		if got := uint64(le.Uint32(msg[4:])); got != ino {
			return false, fmt.Errorf("sock_diag: answer for inode %d, asked %d", got, ino)
		}
		answered = true
		return true, diagAttrs(msg[16:], func(atype uint16, val []byte) error {
			switch {
			case atype == unixDiagPeer && len(val) >= 4:
				d.Peer = uint64(le.Uint32(val))
			case atype == unixDiagRqlen && len(val) >= 8:
				d.RQueue, d.WQueue = le.Uint32(val), le.Uint32(val[4:])
			case atype == unixDiagRqlen && len(val) >= 4:
				d.RQueue = le.Uint32(val)
			case atype == unixDiagName && len(val) > 0:
				if val[0] == 0 {
					// All its bytes, NULs too: x/sys/unix's
					// getsockname cuts it at the first.
					d.Name = "@" + string(val[1:])
				} else {
					d.Name = strings.TrimRight(string(val), "\x00")
				}
			case atype == unixDiagIcons:
				for i := 0; i+4 <= len(val); i += 4 {
					d.Icons = append(d.Icons, uint64(le.Uint32(val[i:])))
				}
			case atype == unixDiagShutdown && len(val) >= 1:
				d.Shutdown = int(val[0])
			}
			return nil
		})
	})
	if err != nil {
		return UnixDiag{}, err
	}
	if !answered {
		return UnixDiag{}, fmt.Errorf("sock_diag: no answer for unix socket %d", ino)
	}
	return d, nil
}

// siocUnixFile is SIOCUNIXFILE (SIOCPROTOPRIVATE): an O_PATH fd on the file
// a unix socket's bind made.
const siocUnixFile = 0x89e0

// UnixSocketFile returns an O_PATH descriptor (close-on-exec) of the file
// the bind of unix socket sock made, removed or not: it tells where the
// file is (its /proc/self/fd link) and is a name a socket connects to the
// bound one by (/proc/self/fd/N), whatever happened to its path. It needs
// CAP_NET_ADMIN; an abstract or unbound socket gives ENOENT.
func UnixSocketFile(sock int) (*FD, error) {
	fd, err := retry(func() (int, error) { return unix.IoctlRetInt(sock, siocUnixFile) })
	if err != nil {
		return nil, os.NewSyscallError("ioctl(SIOCUNIXFILE)", err)
	}
	return NewFD(fd), nil
}

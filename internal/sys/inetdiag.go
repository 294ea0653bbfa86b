package sys

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// InetSock is what sock_diag says of one TCP socket.
type InetSock struct {
	State         int
	Local, Remote netip.AddrPort
	// Inode is 0 for a socket no file holds: one waiting in an accept
	// queue, or one closed and not gone yet.
	Inode          uint64
	RQueue, WQueue uint32
	// Shutdown is sk_shutdown: 1 for reading shut down, 2 for writing.
	Shutdown int
}

// TCPSockets lists the TCP sockets of a family (AF_INET, AF_INET6) whose
// state is in the mask states (1<<TCP_ESTABLISHED…), as sock_diag dumps
// them.
func (d *SockDiag) TCPSockets(family int, states uint32) ([]InetSock, error) {
	return d.InetSockets(family, unix.IPPROTO_TCP, states)
}

// InetSocket finds the socket of a family and protocol (IPPROTO_UDP…)
// with inode ino among those sock_diag dumps.
func (d *SockDiag) InetSocket(family, protocol int, ino uint64) (InetSock, error) {
	socks, err := d.InetSockets(family, protocol, ^uint32(0))
	if err != nil {
		return InetSock{}, err
	}
	for _, s := range socks {
		if s.Inode == ino {
			return s, nil
		}
	}
	return InetSock{}, fmt.Errorf("sock_diag lists no socket with inode %d", ino)
}

// InetSockets lists the sockets of a family and protocol whose state is in
// the mask states.
func (d *SockDiag) InetSockets(family, protocol int, states uint32) ([]InetSock, error) {
	// struct inet_diag_req_v2.
	req := make([]byte, 56)
	req[0] = byte(family)
	req[1] = byte(protocol)
	binary.LittleEndian.PutUint32(req[4:], states)
	var socks []InetSock
	err := d.ask(unix.NLM_F_DUMP, req, func(b []byte) (bool, error) {
		more, done, err := parseInetDiag(b, family)
		socks = append(socks, more...)
		return done, err
	})
	if err != nil {
		return nil, err
	}
	return socks, nil
}

// parseInetDiag reads one batch of a sock_diag dump of inet sockets; done
// is set once the dump ended.
func parseInetDiag(b []byte, family int) (socks []InetSock, done bool, err error) {
	le := binary.LittleEndian
	done, err = diagMessages(b, "TCP sockets", func(msg []byte) (bool, error) {
		// struct inet_diag_msg: family, state, timer, retrans, then
		// struct inet_diag_sockid (ports, addresses, interface, cookie),
		// expires, rqueue, wqueue, uid, inode.
		if len(msg) < 72 {
			return false, fmt.Errorf("sock_diag: short inet_diag_msg")
		}
		s := InetSock{State: int(msg[1])}
		sport, dport := binary.BigEndian.Uint16(msg[4:]), binary.BigEndian.Uint16(msg[6:])
		src, dst := addrOf(family, msg[8:24]), addrOf(family, msg[24:40])
		s.Local, s.Remote = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
		s.RQueue, s.WQueue = le.Uint32(msg[56:]), le.Uint32(msg[60:])
		s.Inode = uint64(le.Uint32(msg[68:]))
		// A malformed attribute ends the attributes, not the socket.
		_ = diagAttrs(msg[72:], func(typ uint16, val []byte) error {
			if typ == inetDiagShutdown && len(val) >= 1 {
				s.Shutdown = int(val[0])
			}
			return nil
		})
		socks = append(socks, s)
		return false, nil
	})
	if err != nil {
		return nil, false, err
	}
	return socks, done, nil
}

const inetDiagShutdown = 8

func addrOf(family int, b []byte) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16]))
}

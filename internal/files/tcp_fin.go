package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/sys"
)

// TCP header flags of the segments made on a peer's behalf.
const (
	tcpFlagFin = 0x01
	tcpFlagAck = 0x10
)

// replayPeerFin sends the peer's FIN (sendFromPeer) until the restored
// socket ls has taken it: a segment can be lost on its way in (a packet
// filter rule of the checkpoint's not gone yet, a busy receive path), and
// a socket left waiting for it would block its reader for ever. The FIN
// follows the received data and acknowledges no more than this side's
// oldest unacknowledged byte.
func replayPeerFin(ls int, s *ckpt.Socket, st *ckpt.TCPState) error {
	window := st.Window[1] >> st.SndWscale // snd_wnd, as the peer sends it
	return sendFromPeerUntil(ls, s, st.RecvSeq, st.SendSeq-uint32(st.OutQ), tcpFlagFin|tcpFlagAck, uint16(min(window, 0xffff)),
		func(state uint8) bool { return state != tcpEstablished }) // CLOSE_WAIT: taken
}

// sendFromPeerUntil sends a segment from the peer (sendFromPeer) until the
// state of the restored socket ls is one done accepts.
func sendFromPeerUntil(ls int, s *ckpt.Socket, seq, ack uint32, flags byte, window uint16, done func(state uint8) bool) error {
	for try := 0; try < 20; try++ {
		if err := sendFromPeer(ls, s, seq, ack, flags, window); err != nil {
			return err
		}
		for wait := 0; wait < 10; wait++ {
			info, err := unix.GetsockoptTCPInfo(ls, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return fmt.Errorf("TCP_INFO: %w", err)
			}
			if done(info.State) {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	}
	return errors.New("the socket did not take it (20 tries)")
}

// sendFromPeer makes a restored connection receive a segment from its
// peer that the peer will not send again: its FIN, which it sent before
// the checkpoint and which was acknowledged (repair mode has no way to
// queue one), or the acknowledgement of this side's FIN. The segment is
// built by hand and sent from the peer's address through a raw socket, as
// CRIU does. The kernel delivers it locally, the destination being a
// local address: the raw socket is made in the network namespace of ls,
// the restored socket.
func sendFromPeer(ls int, s *ckpt.Socket, seq, ack uint32, flags byte, window uint16) error {
	local, err := netip.ParseAddrPort(s.Local)
	if err != nil {
		return err
	}
	peer, err := netip.ParseAddrPort(s.Peer)
	if err != nil {
		return err
	}
	tcp := tcpSegment(peer, local, seq, ack, flags, window)
	family, proto := unix.AF_INET, unix.IPPROTO_RAW
	var packet []byte
	var to unix.Sockaddr
	if local.Addr().Unmap().Is4() && peer.Addr().Unmap().Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8], ip[9] = 64, unix.IPPROTO_TCP
		src, dst := peer.Addr().Unmap().As4(), local.Addr().Unmap().As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		packet = append(ip, tcp...)
		to = &unix.SockaddrInet4{Addr: dst}
	} else {
		family = unix.AF_INET6
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = unix.IPPROTO_TCP, 64
		src, dst := peer.Addr().As16(), local.Addr().As16()
		copy(ip[8:], src[:])
		copy(ip[24:], dst[:])
		packet = append(ip, tcp...)
		to = &unix.SockaddrInet6{Addr: dst}
	}
	raw, err := sys.SocketBeside(ls, family, unix.SOCK_RAW, proto)
	if err != nil {
		return fmt.Errorf("a raw socket: %w", err)
	}
	defer raw.Close()
	fd := raw.Int()
	// A network namespace joined that the checkpoint locked whole
	// (netlock.LockNamespace) lets marked packets through: this segment
	// passes, as CRIU's do.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, netlock.PassMark); err != nil {
		return os.NewSyscallError("setsockopt(SO_MARK)", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			return os.NewSyscallError("setsockopt(IPV6_HDRINCL)", err)
		}
	}
	if err := unix.Sendto(fd, packet, 0, to); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return nil
}

// tcpSegment builds a 20-byte TCP header with flags set, from src to dst,
// with its checksum.
func tcpSegment(src, dst netip.AddrPort, seq, ack uint32, flags byte, window uint16) []byte {
	h := make([]byte, 20)
	be := binary.BigEndian
	be.PutUint16(h[0:], src.Port())
	be.PutUint16(h[2:], dst.Port())
	be.PutUint32(h[4:], seq)
	be.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = flags
	be.PutUint16(h[14:], window)
	var pseudo []byte
	if src.Addr().Unmap().Is4() && dst.Addr().Unmap().Is4() {
		s, d := src.Addr().Unmap().As4(), dst.Addr().Unmap().As4()
		pseudo = append(append(pseudo, s[:]...), d[:]...)
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(h)))
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		pseudo = append(append(pseudo, s[:]...), d[:]...)
		pseudo = append(pseudo, 0, 0, 0, byte(len(h)), 0, 0, 0, unix.IPPROTO_TCP)
	}
	be.PutUint16(h[16:], checksum(h, sum(pseudo)))
	return h
}

// sum is the ones' complement sum of b as big-endian 16-bit words.
func sum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// checksum is the Internet checksum of b, starting from partial.
func checksum(b []byte, partial uint32) uint16 {
	s := partial + sum(b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

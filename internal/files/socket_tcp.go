package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/sys"
)

// Connecting, established, half-closed and closed TCP connections, IPv4 and IPv6, with the peer inside or
// outside the checkpoint, are dumped and rebuilt with TCP_REPAIR: sequence
// numbers, both queues, window, MSS, window scaling, SACK and timestamps.
// The copy crsub holds keeps the socket in repair mode until it is closed,
// after the original is killed, so the peer sees neither FIN nor RST; if
// the process runs on instead, repair mode is left first.
var tcpEstablishedKind = &Kind{
	Files: []string{ckpt.FileTCP},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM && !s.Listening
	},
	Dump:    dumpTCP,
	Restore: restoreTCP,
}

// The states a connection's record (ckpt.Socket.State) tells apart;
// half-closed ones are established, with TCPState's FIN flags.
const (
	tcpStateEstablished = "established"
	tcpStateSynSent     = "syn-sent"
	tcpStateClosed      = "closed"
)

const (
	tcpRepair         = 19
	tcpRepairQueue    = 20
	tcpQueueSeq       = 21
	tcpRepairOptions  = 22
	tcpRepairWindow   = 29
	tcpTimestamp      = 24
	tcpNoQueue        = 0
	tcpRecvQueue      = 1
	tcpSendQueue      = 2
	tcpRepairOffNoWP  = -1
	tcpEstablished    = 1
	tcpSynSent        = 2
	tcpFinWait1       = 4
	tcpFinWait2       = 5
	tcpCloseWait      = 8
	tcpLastAck        = 9
	tcpClosing        = 11
	tcpClose          = 7
	siocOutQNSD       = 0x894B
	maxUserMSS        = 32767 // MAX_TCP_WINDOW: the largest TCP_MAXSEG
	tcpiOptTimestamps = 1
	tcpiOptSack       = 2
	tcpiOptWscale     = 4
)

func dumpTCP(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	what := fmt.Sprintf("tcp socket:[%d]", fd.Link.Inode)
	info, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("%s: TCP_INFO: %w", what, err)
	}
	var peerFin, localFin bool
	state := tcpStateEstablished
	switch info.State {
	case tcpEstablished:
	case tcpSynSent:
		state = tcpStateSynSent
	case tcpCloseWait:
		peerFin = true
	case tcpFinWait1, tcpFinWait2:
		localFin = true
	case tcpLastAck, tcpClosing:
		peerFin, localFin = true, true
	case tcpClose:
		// Closed after a connection: both FINs went and were
		// acknowledged, or a reset ended it (then, as CRIU, it comes
		// back as if closed by FINs: what was received stays to read,
		// what was to send is gone either way).
		state, peerFin, localFin = tcpStateClosed, true, true
	default:
		return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("%s in TCP state %d (connecting, established, half-closed, closed and listening sockets are supported)", what, info.State)}
	}
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: unix.SOCK_STREAM, Protocol: fd.Socket.Protocol, State: state, Options: map[string]int{}}
	if sa, err := unix.Getsockname(s); err == nil {
		sock.Local = sockaddrString(sa)
	}
	sock.Peer = fd.Socket.TCPPeer
	if sock.Local == "" || sock.Peer == "" {
		return 0, fmt.Errorf("%s in TCP state %d: no local or peer address", what, info.State)
	}
	readSocketOptions(s, sock)
	reuse, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR)
	if err != nil {
		return 0, fmt.Errorf("%s: SO_REUSEADDR: %w", what, err)
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, tcpRepair, 1); err != nil {
		return 0, fmt.Errorf("%s: TCP_REPAIR: %w", what, err)
	}
	// From here the socket is in repair mode: it must leave it if the
	// process runs on, and get back the SO_REUSEADDR that leaving it
	// clears.
	c.OnRelease = append(c.OnRelease, func() {
		_ = unix.SetsockoptInt(s, unix.IPPROTO_TCP, tcpRepair, tcpRepairOffNoWP)
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, reuse)
	})
	st := &ckpt.TCPState{Options: int(info.Options), MSS: 0}
	// tcpi_snd_wscale:4 and tcpi_rcv_wscale:4 share the byte after
	// tcpi_options, which Go's TCPInfo leaves as padding.
	wscale := (*[8]byte)(unsafe.Pointer(info))[6]
	st.SndWscale, st.RcvWscale = int(wscale&0xf), int(wscale>>4)
	if st.InQ, err = unix.IoctlGetInt(s, unix.SIOCINQ); err != nil {
		return 0, fmt.Errorf("%s: SIOCINQ: %w", what, err)
	}
	if st.OutQ, err = unix.IoctlGetInt(s, unix.SIOCOUTQ); err != nil {
		return 0, fmt.Errorf("%s: SIOCOUTQ: %w", what, err)
	}
	if st.Unsent, err = unix.IoctlGetInt(s, siocOutQNSD); err != nil {
		return 0, fmt.Errorf("%s: SIOCOUTQNSD: %w", what, err)
	}
	switch {
	case state == tcpStateClosed:
		// What a reset left unsent nobody reads.
		st.LocalFin, st.OutQ, st.Unsent = true, 0, 0
	case localFin:
		// The FIN takes the last sequence number queued: out of the
		// queue sizes while it is unacknowledged (or unsent).
		st.LocalFin = true
		st.OutQ, st.Unsent = max(st.OutQ-1, 0), max(st.Unsent-1, 0)
	}
	st.PeerFin = peerFin // SIOCINQ leaves the peer's FIN out already
	if st.MSS, err = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_MAXSEG); err != nil {
		return 0, fmt.Errorf("%s: TCP_MAXSEG: %w", what, err)
	}
	if ts, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, tcpTimestamp); err == nil {
		st.Timestamp = uint32(ts)
	}
	var win [5]uint32
	wlen := uint32(unsafe.Sizeof(win))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), unix.IPPROTO_TCP, tcpRepairWindow, uintptr(unsafe.Pointer(&win)), uintptr(unsafe.Pointer(&wlen)), 0); e != 0 {
		return 0, fmt.Errorf("%s: TCP_REPAIR_WINDOW: %w", what, e)
	}
	st.Window = win
	var queues [2][]byte
	for i, q := range []struct {
		which int
		seq   *uint32
		n     int
	}{{tcpRecvQueue, &st.RecvSeq, st.InQ}, {tcpSendQueue, &st.SendSeq, st.OutQ}} {
		if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, tcpRepairQueue, q.which); err != nil {
			return 0, fmt.Errorf("%s: TCP_REPAIR_QUEUE: %w", what, err)
		}
		seq, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, tcpQueueSeq)
		if err != nil {
			return 0, fmt.Errorf("%s: TCP_QUEUE_SEQ: %w", what, err)
		}
		*q.seq = uint32(seq)
		// Sequence numbers after the data: a FIN took one more.
		if (q.which == tcpSendQueue && localFin) || (q.which == tcpRecvQueue && peerFin) {
			*q.seq--
		}
		if q.n > maxSocketQueue {
			return 0, fmt.Errorf("%s: %d bytes queued", what, q.n)
		}
		buf := make([]byte, q.n)
		got := 0
		for got < q.n {
			k, _, err := unix.Recvfrom(s, buf[got:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err != nil {
				return 0, fmt.Errorf("%s: peeking queue %d: %w", what, q.which, err)
			}
			if k == 0 {
				break
			}
			got += k
			if k < q.n {
				// A repair peek starts from the queue's head each time.
				got = k
				break
			}
		}
		if got != q.n {
			return 0, fmt.Errorf("%s: peeked %d of %d bytes of queue %d", what, got, q.n, q.which)
		}
		queues[i] = buf
	}
	if peerFin && int32(st.Window[4]-st.RecvSeq) > 0 {
		// rcv_wup, where the window was last advertised, counted the
		// FIN; the kernel refuses one after rcv_nxt.
		st.Window[4] = st.RecvSeq
	}
	sock.TCP = st
	f := ckpt.File{Kind: ckpt.FileTCP, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFileWithPayload(fd, ref, nil, &f, int64(st.InQ+st.OutQ), func(w io.Writer) error {
		for _, q := range queues {
			if _, err := w.Write(q); err != nil {
				return err
			}
		}
		return nil
	})
}

// LockConnections holds still every TCP connection of the checkpointed
// processes (netlock) from before their queues are read until their
// restore: an ACK from a peer that runs on would free part of a send queue
// being read, a segment arriving while the socket is in repair mode would
// be acknowledged without being in the queue read, and a segment arriving
// once the original is gone would be answered with a reset. Each is
// locked in its own network namespace: crsub's, or one of the tree's own
// (which the kill locks whole, netlock.LockNamespace). If the processes run
// on instead, the locks go (OnRelease). It returns the connections it
// locked, or failed to.
func LockConnections(c *DumpContext) ([]netlock.Conn, error) {
	// Connections by network namespace (0: crsub's), each namespace
	// reached through one of its sockets (crsub's copy).
	groups := map[uint64][]netlock.Conn{}
	via := map[uint64]int{}
	var all []netlock.Conn
	for _, fd := range c.Sockets {
		s := fd.Socket
		if s == nil || (s.Family != unix.AF_INET && s.Family != unix.AF_INET6) || s.Type != unix.SOCK_STREAM || s.Listening {
			continue
		}
		switch s.TCPState {
		case tcpEstablished, tcpSynSent, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
		default:
			continue
		}
		if c.Inflight[fd.Link.Inode] != nil {
			continue // connected anew at restart (inflightKind)
		}
		conn, ok := tcpConn(int(fd.Copy.Fd()), s.TCPPeer)
		if !ok {
			continue
		}
		var ns uint64
		if ours, err := sys.InCallersNetNS(int(fd.Copy.Fd())); err == nil && !ours {
			if ns, err = socketNetNS(int(fd.Copy.Fd())); err != nil {
				return all, fmt.Errorf("the network namespace of %s: %w", conn.Local, err)
			}
		}
		groups[ns] = append(groups[ns], conn)
		via[ns] = int(fd.Copy.Fd())
		all = append(all, conn)
	}
	// inNamespace runs f with an fd on namespace ns (netlock.Host for
	// crsub's).
	inNamespace := func(ns uint64, f func(netns int) error) error {
		if ns == 0 {
			return f(netlock.Host)
		}
		nsfd, err := sys.SocketNetNS(via[ns])
		if err != nil {
			return err
		}
		defer nsfd.Close()
		return f(nsfd.Int())
	}
	var errs []error
	for ns, conns := range groups {
		if err := inNamespace(ns, func(netns int) error { return netlock.Lock(netns, conns) }); err != nil {
			errs = append(errs, err)
			continue
		}
		c.OnRelease = append(c.OnRelease, func() {
			if err := inNamespace(ns, func(netns int) error { return netlock.Unlock(netns, conns) }); err != nil {
				c.Log.Warn("TCP connections stay locked", "connections", len(conns), "err", err)
			}
		})
	}
	return all, errors.Join(errs...)
}

// tcpConn returns the addresses of TCP socket s connected to peer.
func tcpConn(s int, peer string) (netlock.Conn, bool) {
	la, err := unix.Getsockname(s)
	if err != nil {
		return netlock.Conn{}, false
	}
	lap, err1 := netip.ParseAddrPort(sockaddrString(la))
	pap, err2 := netip.ParseAddrPort(peer)
	return netlock.Conn{Local: lap, Peer: pap}, err1 == nil && err2 == nil
}

func restoreTCP(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.TCP == nil {
		return -1, fmt.Errorf("tcp socket without its repair state")
	}
	if c.TCPClose {
		return restoreShut(t, s, f.Flags)
	}
	st := s.TCP
	if int64(st.InQ+st.OutQ) != rec.PayloadLen || st.Unsent > st.OutQ || st.InQ < 0 || st.Unsent < 0 {
		return -1, fmt.Errorf("tcp %s -> %s: queue sizes %d+%d do not match the %d bytes stored", s.Local, s.Peer, st.InQ, st.OutQ, rec.PayloadLen)
	}
	fdv, err := t.Syscall(unix.SYS_SOCKET, uint64(s.Family), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, uint64(s.Protocol))
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("tcp %s -> %s: %w", s.Local, s.Peer, err)
	}
	// Options first: repair mode then lets the socket bind the local port
	// its listener and sibling connections (accepted from one listener)
	// share, which setting SO_REUSEADDR in repair mode would undo.
	if err := setSocketOptions(t, fd, s); err != nil {
		return fail(err)
	}
	if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpRepair, 1); err != nil {
		return fail(fmt.Errorf("TCP_REPAIR: %w", err))
	}
	// Each queue starts where its stored data starts; a connection still
	// sending its SYN starts a sequence number before, where the SYN is.
	sendStart := st.SendSeq - uint32(st.OutQ)
	if s.State == tcpStateSynSent {
		sendStart--
	}
	for _, q := range []struct{ which, seq int }{
		{tcpSendQueue, int(sendStart)},
		{tcpRecvQueue, int(st.RecvSeq - uint32(st.InQ))},
	} {
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpRepairQueue, q.which); err != nil {
			return fail(fmt.Errorf("TCP_REPAIR_QUEUE: %w", err))
		}
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpQueueSeq, q.seq); err != nil {
			return fail(fmt.Errorf("TCP_QUEUE_SEQ: %w", err))
		}
	}
	if err := sockaddrCall(t, unix.SYS_BIND, fd, s.Family, s.Local); err != nil {
		return fail(err)
	}
	if s.State == tcpStateSynSent {
		if err := connectAgain(c, t, fd, rec.Objref, s, f.Flags); err != nil {
			return fail(err)
		}
		return fd, nil
	}
	// The segment size: connect sizes segments from the MSS clamp, which
	// TCP_REPAIR_OPTIONS sets only after it (and nothing sizes them again):
	// a user MSS set for the time of the connect gives it first (as large
	// as the kernel takes one: loopback's 65495 is more). Without it, a
	// connection sends segments of the default 536 bytes less options,
	// whatever its peer takes.
	if st.MSS > 0 {
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, min(st.MSS, maxUserMSS)); err != nil {
			return fail(fmt.Errorf("TCP_MAXSEG=%d: %w", min(st.MSS, maxUserMSS), err))
		}
	}
	if err := sockaddrCall(t, unix.SYS_CONNECT, fd, s.Family, s.Peer); err != nil {
		return fail(err)
	}
	if st.MSS > 0 {
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, 0); err != nil {
			return fail(fmt.Errorf("TCP_MAXSEG=0: %w", err))
		}
	}
	// Options the connection negotiated: struct tcp_repair_opt pairs.
	var opts []byte
	addOpt := func(code, val uint32) {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, code)
		binary.LittleEndian.PutUint32(b[4:], val)
		opts = append(opts, b...)
	}
	addOpt(2, uint32(st.MSS)) // TCPOPT_MAXSEG
	if st.Options&tcpiOptWscale != 0 {
		addOpt(3, uint32(st.SndWscale)|uint32(st.RcvWscale)<<16) // TCPOPT_WINDOW
	}
	if st.Options&tcpiOptSack != 0 {
		addOpt(4, 0) // TCPOPT_SACK_PERM
	}
	if st.Options&tcpiOptTimestamps != 0 {
		addOpt(8, 0) // TCPOPT_TIMESTAMP
	}
	addr, err := t.Scratch(opts)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), unix.IPPROTO_TCP, tcpRepairOptions, addr, uint64(len(opts))); err != nil {
		return fail(fmt.Errorf("TCP_REPAIR_OPTIONS: %w", err))
	}
	if st.Options&tcpiOptTimestamps != 0 {
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpTimestamp, int(st.Timestamp)); err != nil {
			return fail(fmt.Errorf("TCP_TIMESTAMP: %w", err))
		}
	}
	// The queues: what was received and not read, and what was sent and
	// not acknowledged, go back in repair mode; what was never sent is
	// sent once repair mode is off.
	payload := rec.Payload()
	recvQ := make([]byte, st.InQ)
	sendQ := make([]byte, st.OutQ)
	if _, err := io.ReadFull(payload, recvQ); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(payload, sendQ); err != nil {
		return fail(err)
	}
	local, err := t.Copy(fd)
	if err != nil {
		return fail(err)
	}
	defer local.Close()
	ls := int(local.Fd())
	sent := sendQ[:st.OutQ-st.Unsent]
	// The send queue goes back whole, in repair mode or not, whatever the
	// peer's window: a send buffer of the original's size may not hold it
	// as written now (the original filled it up to the last byte its
	// accounting allowed), and a write waiting for room would wait for
	// the peer. The image's size comes back once the queue is in.
	if st.OutQ > 0 {
		if err := unix.SetsockoptInt(ls, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, st.OutQ+1<<20); err != nil {
			return fail(fmt.Errorf("SO_SNDBUFFORCE: %w", os.NewSyscallError("setsockopt", err)))
		}
	}
	for _, q := range []struct {
		which int
		data  []byte
	}{{tcpRecvQueue, recvQ}, {tcpSendQueue, sent}} {
		if len(q.data) == 0 {
			continue
		}
		if err := unix.SetsockoptInt(ls, unix.IPPROTO_TCP, tcpRepairQueue, q.which); err != nil {
			return fail(fmt.Errorf("TCP_REPAIR_QUEUE: %w", err))
		}
		if err := writeAll(ls, q.data); err != nil {
			return fail(fmt.Errorf("refilling queue %d: %w", q.which, err))
		}
	}
	// The window last: the kernel checks it against rcv_nxt, which the
	// receive queue's data moved to where the window was advertised.
	win := make([]byte, 20)
	for i, v := range st.Window {
		binary.LittleEndian.PutUint32(win[4*i:], v)
	}
	if err := unix.SetsockoptString(ls, unix.IPPROTO_TCP, tcpRepairWindow, string(win)); err != nil {
		return fail(fmt.Errorf("TCP_REPAIR_WINDOW: %w", os.NewSyscallError("setsockopt", err)))
	}
	if s.State == tcpStateClosed {
		if err := closeRepaired(ls, s, st); err != nil {
			return fail(err)
		}
	} else {
		// In a network namespace of the image, held still from here until
		// its peer end is restored too (socket_tcp_netns.go).
		c.holdRestored(t, rec.Objref, ls, s)
	}
	if err := unix.SetsockoptInt(ls, unix.IPPROTO_TCP, tcpRepair, tcpRepairOffNoWP); err != nil {
		if err := unix.SetsockoptInt(ls, unix.IPPROTO_TCP, tcpRepair, 0); err != nil {
			return fail(fmt.Errorf("leaving repair mode: %w", err))
		}
	}
	// Leaving repair mode cleared SO_REUSEADDR. A listener restored after
	// this connection binds the port they share only if it is on, so it
	// stays on until every file is restored (accepted connections of a
	// listener with SO_REUSEADDR have it anyway).
	if err := unix.SetsockoptInt(ls, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(fmt.Errorf("SO_REUSEADDR: %w", os.NewSyscallError("setsockopt", err)))
	}
	if s.Options["SO_REUSEADDR"] == 0 {
		c.settle(rec.Objref, clearReuseAddr)
	}
	if s.State == tcpStateClosed {
		// Nothing more comes or goes, nothing was locked.
		if err := setNonblock(t, fd, f.Flags); err != nil {
			return fail(err)
		}
		return fd, nil
	}
	unlockConn(c, t, ls, s)
	if err := writeAll(ls, sendQ[st.OutQ-st.Unsent:]); err != nil {
		return fail(fmt.Errorf("sending the unsent queue: %w", err))
	}
	if st.OutQ > 0 {
		if err := restoreSendBuffer(ls, s); err != nil {
			return fail(err)
		}
	}
	// Half-closed: the FINs after the data, the peer's first.
	if st.PeerFin {
		if err := replayPeerFin(ls, s, st); err != nil {
			return fail(fmt.Errorf("replaying the peer's FIN: %w", err))
		}
	}
	if st.LocalFin {
		if err := unix.Shutdown(ls, unix.SHUT_WR); err != nil {
			return fail(fmt.Errorf("replaying this side's FIN: %w", os.NewSyscallError("shutdown", err)))
		}
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

// restoreSendBuffer gives a restored connection whose send queue was
// refilled the image's send buffer size and buffer locks again (a size
// set locks it; the image's SO_BUF_LOCK says whether the original's was).
func restoreSendBuffer(ls int, s *ckpt.Socket) error {
	if v, ok := s.Options["SO_SNDBUF"]; ok {
		if err := unix.SetsockoptInt(ls, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, v/2); err != nil {
			return fmt.Errorf("SO_SNDBUFFORCE: %w", os.NewSyscallError("setsockopt", err))
		}
	}
	if err := unix.SetsockoptInt(ls, unix.SOL_SOCKET, unix.SO_BUF_LOCK, s.Options["SO_BUF_LOCK"]); err != nil {
		return fmt.Errorf("SO_BUF_LOCK: %w", os.NewSyscallError("setsockopt", err))
	}
	return nil
}

// restoreShut makes a connection closed at restart (TCPClose) as CRIU does:
// a new socket with its options, never connected, shut down both ways (a
// shutdown the kernel records though it answers ENOTCONN), which reads
// its end, fails writes with EPIPE and polls POLLHUP. Its peer is let go.
func restoreShut(t Target, s *ckpt.Socket, flags int) (int, error) {
	fd, err := socketWithOptions(t, s)
	if err != nil {
		return -1, fmt.Errorf("tcp %s -> %s, closed: %w", s.Local, s.Peer, err)
	}
	if _, err := t.Syscall(unix.SYS_SHUTDOWN, uint64(fd), unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("tcp %s -> %s, closed: shutdown: %w", s.Local, s.Peer, err)
	}
	if err := setNonblock(t, fd, flags); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if s.State != tcpStateClosed {
		unlockConn(nil, t, -1, s)
	}
	return fd, nil
}

// sockaddrCall runs bind or connect (nr) on fd in the target with the
// address host:port of family.
func sockaddrCall(t Target, nr, fd, family int, hostPort string) error {
	what := "bind"
	if nr == unix.SYS_CONNECT {
		what = "connect"
	}
	raw, err := rawSockaddr(family, hostPort)
	if err != nil {
		return err
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(nr, uint64(fd), addr, uint64(len(raw))); err != nil {
		return fmt.Errorf("%s %s: %w", what, hostPort, err)
	}
	return nil
}

// unlockConn lets a restored connection's peer's packets in again: on the
// host, where the checkpoint locked it, or, for one in a network namespace
// of the image, where this restart held it (holdConn). ls is crsub's copy
// of the socket, -1 for one never held.
func unlockConn(c *RestoreContext, t Target, ls int, s *ckpt.Socket) {
	local, err1 := netip.ParseAddrPort(s.Local)
	peer, err2 := netip.ParseAddrPort(s.Peer)
	if err1 != nil || err2 != nil {
		return
	}
	conn := netlock.Conn{Local: local, Peer: peer}
	if ls >= 0 {
		if ours, err := sys.InCallersNetNS(ls); err == nil && !ours {
			if err := c.releaseConn(ls, conn); err != nil && err != netlock.ErrUnavailable {
				t.Warn("cannot unlock the connection's packets", "local", s.Local, "peer", s.Peer, "err", err)
			}
			return
		}
	}
	// One in a network namespace of the tree's own was not locked here
	// (its namespace was, whole): deleting what is not there is no error.
	if err := netlock.Unlock(netlock.Host, []netlock.Conn{conn}); err != nil && err != netlock.ErrUnavailable {
		t.Warn("cannot unlock the connection's packets", "local", s.Local, "peer", s.Peer, "err", err)
	}
}

// connectAgain connects the bound socket fd, its send queue's sequence
// set to the SYN's in repair mode, to its peer again as a connection that
// was sending its SYN: out of repair mode, so that the SYN goes (with the
// original sequence number) and is retransmitted until the peer answers,
// without waiting for it.
func connectAgain(c *RestoreContext, t Target, fd int, ref ckpt.Objref, s *ckpt.Socket, flags int) error {
	if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpRepair, 0); err != nil {
		return fmt.Errorf("leaving repair mode: %w", err)
	}
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("fcntl F_SETFL O_NONBLOCK: %w", err)
	}
	if err := sockaddrCall(t, unix.SYS_CONNECT, fd, s.Family, s.Peer); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	// As for an established connection (restoreTCP), leaving repair mode
	// cleared SO_REUSEADDR, which the sockets sharing its port need on
	// until they are bound.
	if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("setsockopt SO_REUSEADDR=1: %w", err)
	}
	if s.Options["SO_REUSEADDR"] == 0 {
		c.settle(ref, clearReuseAddr)
	}
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	defer local.Close()
	unlockConn(c, t, int(local.Fd()), s)
	if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(flags&unix.O_NONBLOCK)); err != nil {
		return fmt.Errorf("fcntl F_SETFL: %w", err)
	}
	return nil
}

// closeRepaired takes a connection rebuilt in repair mode whose record
// says it closed (both FINs acknowledged, or reset) to state CLOSE the way
// it went there: the peer's FIN comes in after the received data
// (CLOSE_WAIT), this side's FIN goes into the send queue as sent already,
// repair mode keeping it off the wire (LAST_ACK), and the peer's
// acknowledgement of it ends the connection.
func closeRepaired(ls int, s *ckpt.Socket, st *ckpt.TCPState) error {
	if err := replayPeerFin(ls, s, st); err != nil {
		return fmt.Errorf("replaying the peer's FIN: %w", err)
	}
	if err := unix.SetsockoptInt(ls, unix.IPPROTO_TCP, tcpRepairQueue, tcpSendQueue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", os.NewSyscallError("setsockopt", err))
	}
	if err := unix.Shutdown(ls, unix.SHUT_WR); err != nil {
		return fmt.Errorf("queueing this side's FIN: %w", os.NewSyscallError("shutdown", err))
	}
	if err := unix.SetsockoptInt(ls, unix.IPPROTO_TCP, tcpRepairQueue, tcpNoQueue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", os.NewSyscallError("setsockopt", err))
	}
	// Each FIN took a sequence number.
	err := sendFromPeerUntil(ls, s, st.RecvSeq+1, st.SendSeq+1, tcpFlagAck, uint16(min(st.Window[1]>>st.SndWscale, 0xffff)),
		func(state uint8) bool { return state == tcpClose })
	if err != nil {
		return fmt.Errorf("acknowledging this side's FIN: %w", err)
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// clearReuseAddr turns SO_REUSEADDR off on a restored socket, once its
// siblings on the same port are bound (RestoreContext.Settle).
func clearReuseAddr(t Target, fd int) error {
	if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); err != nil {
		return fmt.Errorf("setsockopt SO_REUSEADDR=0: %w", err)
	}
	return nil
}

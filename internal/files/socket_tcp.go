package files

import (
	"encoding/binary"
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

// Established and half-closed TCP connections, IPv4 and IPv6, with the peer inside or
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

const (
	tcpRepair         = 19
	tcpRepairQueue    = 20
	tcpQueueSeq       = 21
	tcpRepairOptions  = 22
	tcpRepairWindow   = 29
	tcpTimestamp      = 24
	tcpRecvQueue      = 1
	tcpSendQueue      = 2
	tcpRepairOffNoWP  = -1
	tcpEstablished    = 1
	tcpFinWait1       = 4
	tcpFinWait2       = 5
	tcpCloseWait      = 8
	tcpLastAck        = 9
	tcpClosing        = 11
	tcpClose          = 7
	siocOutQNSD       = 0x894B
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
	switch info.State {
	case tcpEstablished:
	case tcpCloseWait:
		peerFin = true
	case tcpFinWait1, tcpFinWait2:
		localFin = true
	case tcpLastAck, tcpClosing:
		peerFin, localFin = true, true
	default:
		return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("%s in TCP state %d (established, half-closed and listening sockets are supported)", what, info.State)}
	}
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: unix.SOCK_STREAM, Protocol: fd.Socket.Protocol, State: "established", Options: map[string]int{}}
	if sa, err := unix.Getsockname(s); err == nil {
		sock.Local = sockaddrString(sa)
	}
	if sa, err := unix.Getpeername(s); err == nil {
		sock.Peer = sockaddrString(sa)
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
	if localFin {
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
	// A connection in a network namespace of the tree's own is held still
	// by the lock of the whole namespace.
	if local, err1 := netip.ParseAddrPort(sock.Local); err1 == nil {
		if peer, err2 := netip.ParseAddrPort(sock.Peer); err2 == nil {
			if ours, err := sys.InCallersNetNS(s); err != nil || ours {
				c.TCPConns = append(c.TCPConns, netlock.Conn{Local: local, Peer: peer})
			}
		}
	}
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

func restoreTCP(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.TCP == nil {
		return -1, fmt.Errorf("tcp socket without its repair state")
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
	// Each queue starts where its stored data starts.
	for _, q := range []struct{ which, seq int }{
		{tcpSendQueue, int(st.SendSeq - uint32(st.OutQ))},
		{tcpRecvQueue, int(st.RecvSeq - uint32(st.InQ))},
	} {
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpRepairQueue, q.which); err != nil {
			return fail(fmt.Errorf("TCP_REPAIR_QUEUE: %w", err))
		}
		if err := setsockoptInt(t, fd, unix.IPPROTO_TCP, tcpQueueSeq, q.seq); err != nil {
			return fail(fmt.Errorf("TCP_QUEUE_SEQ: %w", err))
		}
	}
	for _, step := range []struct {
		nr   int
		addr string
		what string
	}{{unix.SYS_BIND, s.Local, "bind"}, {unix.SYS_CONNECT, s.Peer, "connect"}} {
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
	// In a network namespace of the image, held still from here until
	// its peer end is restored too (socket_tcp_netns.go).
	laddr, err1 := netip.ParseAddrPort(s.Local)
	paddr, err2 := netip.ParseAddrPort(s.Peer)
	conn := netlock.Conn{Local: laddr, Peer: paddr}
	if err1 == nil && err2 == nil {
		if err := c.holdConn(ls, conn); err != nil && err != netlock.ErrUnavailable {
			t.Warn("cannot hold the connection's packets: its peer may see it reset", "local", s.Local, "peer", s.Peer, "err", err)
		}
		c.settle(rec.Objref, func(t Target, _ int) error {
			if err := c.releaseHeld(); err != nil {
				t.Warn("cannot let the restored connections' packets through", "err", err)
			}
			return nil
		})
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
	// The connection lives again: its peer's packets may come in.
	// Only connections in crsub's namespace are locked one by one by the
	// checkpoint; the others, by this restart.
	ours, err := sys.InCallersNetNS(ls)
	switch {
	case err1 != nil || err2 != nil:
	case err != nil || ours:
		if err := netlock.Unlock(netlock.Host, []netlock.Conn{conn}); err != nil && err != netlock.ErrUnavailable {
			t.Warn("cannot unlock the connection's packets", "local", s.Local, "peer", s.Peer, "err", err)
		}
	default:
		if err := c.releaseConn(ls, conn); err != nil && err != netlock.ErrUnavailable {
			t.Warn("cannot unlock the connection's packets", "local", s.Local, "peer", s.Peer, "err", err)
		}
	}
	if err := writeAll(ls, sendQ[st.OutQ-st.Unsent:]); err != nil {
		return fail(fmt.Errorf("sending the unsent queue: %w", err))
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

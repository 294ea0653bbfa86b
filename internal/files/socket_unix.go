package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// Connected unix sockets whose two ends are both held in the checkpointed
// tree (socketpair(2), or a connection between two of its processes) are a
// pair object, carrying what is queued in each direction, and two file
// records that depend on it, as pipes are. A unix socket connected to a
// process outside the tree is external. Listening unix sockets are
// unixListenKind's.
//
// A unix socket bound to a name and not connected (a syslog-style server
// socket), or a datagram socket connected to a socket that is not
// connected back to it, is socket_unix_dgram.go's. A socket never bound, or whose peer is gone, is
// made again as such.
var unixKind = &Kind{
	Files: []string{ckpt.FileUnixSocket, ckpt.FileUnixBound},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Socket != nil && fd.Socket.Family == unix.AF_UNIX && !fd.Socket.Listening
	},
	Dump: dumpUnixEnd,
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		if f.Kind == ckpt.FileUnixBound {
			return restoreUnixBound(c, t, rec, f)
		}
		return restoreUnixEnd(c, t, rec, f)
	},
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeUnixPair: restoreUnixPair, ckpt.TypeUnixQueue: restoreLaterQueue},
}

func dumpUnixEnd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	ino := fd.Link.Inode
	d, err := c.unixDiag(fd, ino)
	if err != nil {
		return 0, err
	}
	what := fmt.Sprintf("unix socket:[%d]", ino)
	if d.Peer == 0 {
		return dumpUnixBound(c, fd, what, d)
	}
	if fd.Socket.Type == unix.SOCK_DGRAM {
		// Connected to a socket that is not connected back (a server's
		// bound socket, itself): connected again by its name.
		if pd, err := c.unixDiag(fd, d.Peer); err == nil && (pd.Peer != ino || d.Peer == ino) && pd.Name != "" {
			return dumpNamed(c, fd, what, d.Name, pd.Name, d.Peer)
		}
	}
	end := 0
	if d.Peer < ino {
		end = 1
	}
	f := ckpt.File{Kind: ckpt.FileUnixSocket, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: ino},
		Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "connected", PairEnd: end}}
	if fd.Socket.Type == unix.SOCK_DGRAM && d.Name != "" && d.Name != "@" {
		// A datagram pair's end bound to a name (a stream end's name may
		// be its listener's, which accepted it).
		recordUnixName(fd, d.Name, f.Socket)
	}
	readSocketOptions(int(fd.Copy.Fd()), f.Socket)
	ref := c.W.NewObjref()
	peer := c.Sockets[d.Peer]
	if peer == nil && c.Caller != 0 && d.Peer == c.Caller {
		return dumpCallerEnd(c, fd, what, d)
	}
	if peer == nil {
		f.External = true
		f.ExternalReason = fmt.Sprintf("%s is connected to a process outside the checkpoint (peer socket:[%d])", what, d.Peer)
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	key := min(ino, d.Peer)
	pairRef, ok := c.Pairs[key]
	if !ok {
		ends := [2]*Fd{fd, peer}
		if end == 1 {
			ends = [2]*Fd{peer, fd}
		}
		if pairRef, err = dumpUnixPair(c, fd.Socket.Type, ends); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		c.Pairs[key] = pairRef
	}
	return ref, c.WriteFile(fd, ref, []ckpt.Objref{pairRef}, &f)
}

// dumpUnixPair writes the pair object with what each end has queued, and
// the files its messages carry first.
func dumpUnixPair(c *DumpContext, typ int, ends [2]*Fd) (ckpt.Objref, error) {
	p := ckpt.UnixPair{Type: typ}
	var data [2][]byte
	var deps []ckpt.Objref
	var later [2][]queuedMessage
	for i, e := range ends {
		p.Inodes[i] = e.Link.Inode
		msgs, err := queueOf(c, e, typ)
		if err != nil {
			return 0, err
		}
		d, err := c.unixDiag(e, e.Link.Inode)
		if err != nil {
			return 0, err
		}
		p.Shutdown[i] = d.Shutdown
		if carriesUnixSocket(msgs) {
			// Its messages may carry this very pair, whose file
			// records do not exist yet.
			p.Later[i], later[i] = true, msgs
			continue
		}
		var carried []ckpt.Objref
		if data[i], p.Messages[i], p.Ancillary[i], carried, err = dumpQueue(c, typ, msgs); err != nil {
			return 0, err
		}
		deps = append(deps, carried...)
		p.Bytes[i] = int64(len(data[i]))
	}
	if (p.Later[0] || p.Later[1]) && p.Shutdown != [2]int{} {
		return 0, errors.New("a pair shut down whose queue carries unix sockets: not supported yet")
	}
	for i := range later {
		if p.Later[i] {
			msgs, receiver, sender := later[i], ends[i], ends[1-i]
			c.after = append(c.after, func(c *DumpContext) error { return dumpLaterQueue(c, typ, receiver, sender, msgs) })
		}
	}
	ref := c.W.NewObjref()
	return ref, c.W.WriteWithPayload(ckpt.TypeUnixPair, ref, deps, &p, p.Bytes[0]+p.Bytes[1], func(w io.Writer) error {
		for _, d := range data {
			if _, err := w.Write(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// carriesUnixSocket reports whether a queued message carries a unix socket.
func carriesUnixSocket(msgs []queuedMessage) bool {
	for _, m := range msgs {
		for _, f := range m.fds {
			if f.Socket != nil && f.Socket.Family == unix.AF_UNIX {
				return true
			}
		}
	}
	return false
}

// carriesQueuingSocket reports whether a queued message carries a unix
// socket that has fds in flight itself: a socket dumped with its queue in
// its own record cannot carry one (it may be itself).
func carriesQueuingSocket(msgs []queuedMessage) bool {
	for _, m := range msgs {
		for _, f := range m.fds {
			if f.Socket != nil && f.Socket.Family == unix.AF_UNIX {
				if n := f.Info.Extra["scm_fds"]; len(n) > 0 && n[0] != "0" {
					return true
				}
			}
		}
	}
	return false
}

// dumpLaterQueue writes what is queued at a pair's end receiver, after the
// fd table: the pair's ends and the files its messages carry have records
// by then (or get them here).
func dumpLaterQueue(c *DumpContext, typ int, receiver, sender *Fd, msgs []queuedMessage) error {
	if c.DumpFd == nil {
		return errors.New("a queued message carries files, and the driver dumps none")
	}
	what := fmt.Sprintf("unix socket:[%d]", receiver.Link.Inode)
	recvRef, err := c.DumpFd(receiver)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	sendRef, err := c.DumpFd(sender)
	if err != nil {
		return fmt.Errorf("%s: its peer: %w", what, err)
	}
	data, sizes, anc, deps, err := dumpQueue(c, typ, msgs)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	q := ckpt.UnixQueue{Type: typ, Receiver: recvRef, Sender: sendRef, Bytes: int64(len(data)), Messages: sizes, Ancillary: anc}
	deps = append([]ckpt.Objref{recvRef, sendRef}, deps...)
	return c.W.WriteWithPayload(ckpt.TypeUnixQueue, 0, deps, &q, q.Bytes, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// restoreLaterQueue refills what a pair's end had queued (UnixQueue),
// sent again from its peer, once every file its messages carry exists.
func restoreLaterQueue(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var q ckpt.UnixQueue
	if err := rec.Decode(&q); err != nil {
		return err
	}
	if q.Bytes != rec.PayloadLen {
		return fmt.Errorf("unix queue of %d bytes, with a payload of %d", q.Bytes, rec.PayloadLen)
	}
	data := make([]byte, q.Bytes)
	if _, err := io.ReadFull(rec.Payload(), data); err != nil {
		return err
	}
	sender, err := fdOrOpen(c, t, q.Sender)
	if err != nil {
		return fmt.Errorf("unix queue: the sending end: %w", err)
	}
	from, err := t.Copy(sender)
	if err != nil {
		return err
	}
	defer from.Close()
	if err := requeue(c, t, int(from.Fd()), q.Type, data, q.Messages, q.Ancillary); err != nil {
		return fmt.Errorf("unix queue: %w", err)
	}
	return nil
}

// restoreUnixPair recreates a pair record inside t and refills both
// queues; the file records of its ends take its two fds as pipe ends do
// (end 0 in Read, end 1 in Write).
func restoreUnixPair(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var p ckpt.UnixPair
	if err := rec.Decode(&p); err != nil {
		return err
	}
	if p.Bytes[0] < 0 || p.Bytes[1] < 0 || p.Bytes[0]+p.Bytes[1] != rec.PayloadLen {
		return fmt.Errorf("unix pair: queue lengths %v do not add up to the payload's %d bytes", p.Bytes, rec.PayloadLen)
	}
	addr, err := t.Scratch(make([]byte, 8))
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_SOCKETPAIR, unix.AF_UNIX, uint64(p.Type|unix.SOCK_CLOEXEC), 0, addr); err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	b, err := t.ReadScratch(8)
	if err != nil {
		return err
	}
	sv := [2]int{int(int32(le32(b))), int(int32(le32(b[4:])))}
	rp := &RestoredPipe{Pid: t.Pid(), Read: sv[0], Write: sv[1]}
	c.Pipes[rec.Objref] = rp
	t.Hold(&rp.Read)
	t.Hold(&rp.Write)
	payload := rec.Payload()
	for i := 0; i < 2; i++ {
		data := make([]byte, p.Bytes[i])
		if _, err := io.ReadFull(payload, data); err != nil {
			return err
		}
		if len(data) == 0 {
			continue
		}
		// What end i had queued is sent again from the other end.
		from, err := t.Copy(sv[1-i])
		if err != nil {
			return err
		}
		err = requeue(c, t, int(from.Fd()), p.Type, data, p.Messages[i], p.Ancillary[i])
		from.Close()
		if err != nil {
			return fmt.Errorf("unix pair: refilling end %d: %w", i, err)
		}
	}
	// Shut down once refilled: a shut down end could not have been
	// written to. (A stream end's shutdown shows at its peer too.)
	for i, fd := range []int{rp.Read, rp.Write} {
		if err := shutdownUnix(t, fd, p.Shutdown[i]); err != nil {
			return fmt.Errorf("unix pair: end %d: %w", i, err)
		}
	}
	return nil
}

func restoreUnixEnd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	if f.Socket == nil {
		return -1, errors.New("unix socket without socket state")
	}
	which := "read"
	if f.Socket.PairEnd == 1 {
		which = "write"
	}
	pf := *f
	pf.PipeEnd = which
	fd, err := restorePipeEnd(c, t, rec, &pf)
	if err == nil && f.Socket.Local != "" {
		if err = bindUnix(c, t, fd, f.Identity.Inode, f.Socket); err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		}
	}
	if err == nil {
		if err = setSocketOptions(t, fd, f.Socket); err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		}
	}
	if err != nil {
		return -1, fmt.Errorf("unix socket:[%d] (end %s of its pair): %w", f.Identity.Inode, strconv.Itoa(f.Socket.PairEnd), err)
	}
	return fd, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func dumpUnixBound(c *DumpContext, fd *Fd, what string, d sys.UnixDiag) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	unnamed := d.Name == "" || d.Name == "@"
	// A stream or seqpacket socket whose peer is gone reads what is still
	// queued, then the end of the stream, and cannot be written; its name,
	// if any, is its listener's (an accepted socket), which is not its own
	// to bind.
	gone := d.State != tcpClose && fd.Socket.Type != unix.SOCK_DGRAM
	if unnamed || gone {
		// Never bound: a socket made and not connected yet (the JVM
		// keeps one), or one whose peer is gone.
		sock := &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "unbound"}
		var queued []byte
		var deps []ckpt.Objref
		if d.State != tcpClose {
			sock.State, sock.Shutdown = "disconnected", d.Shutdown
			msgs, err := queueOf(c, fd, fd.Socket.Type)
			if err == nil && carriesQueuingSocket(msgs) {
				return 0, &UnsupportedError{Fd: fd.Num, What: what + " queues a unix socket that has fds in flight itself"}
			}
			if err == nil {
				queued, sock.Messages, sock.Ancillary, deps, err = dumpQueue(c, fd.Socket.Type, msgs)
			}
			if err != nil {
				return 0, fmt.Errorf("%s: %w", what, err)
			}
			sock.Queued = int64(len(queued))
		}
		readSocketOptions(s, sock)
		f := ckpt.File{Kind: ckpt.FileUnixBound, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
		ref := c.W.NewObjref()
		return ref, c.WriteFileWithPayload(fd, ref, deps, &f, sock.Queued, func(w io.Writer) error {
			_, err := w.Write(queued)
			return err
		})
	}
	return dumpNamed(c, fd, what, d.Name, "", 0)
}

func restoreUnixBound(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s != nil && (s.State == "unbound" || s.State == "disconnected") {
		return restoreUnixUnbound(c, t, rec, f)
	}
	if s == nil || (s.Local == "" && s.Peer == "") {
		return -1, errors.New("bound unix socket without its name")
	}
	return restoreNamed(c, t, rec, f)
}

// restoreUnixUnbound makes a socket that was never bound: a new one, or, if
// its peer was gone, one end of a pair whose other end sends again what was
// queued, then is closed.
func restoreUnixUnbound(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	var fd int
	if s.State == "unbound" {
		fdv, err := t.Syscall(unix.SYS_SOCKET, unix.AF_UNIX, uint64(s.Type|unix.SOCK_CLOEXEC), 0)
		if err != nil {
			return -1, fmt.Errorf("socket: %w", err)
		}
		fd = int(fdv)
	} else {
		if s.Queued != rec.PayloadLen || s.Queued < 0 {
			return -1, fmt.Errorf("unix socket: %d bytes queued, the payload holds %d", s.Queued, rec.PayloadLen)
		}
		addr, err := t.Scratch(make([]byte, 8))
		if err != nil {
			return -1, err
		}
		if _, err := t.Syscall(unix.SYS_SOCKETPAIR, unix.AF_UNIX, uint64(s.Type|unix.SOCK_CLOEXEC), 0, addr); err != nil {
			return -1, fmt.Errorf("socketpair: %w", err)
		}
		b, err := t.ReadScratch(8)
		if err != nil {
			return -1, err
		}
		fd = int(int32(binary.LittleEndian.Uint32(b)))
		peer := int(int32(binary.LittleEndian.Uint32(b[4:])))
		err = refillFrom(c, t, peer, rec, s)
		if _, cerr := t.Syscall(unix.SYS_CLOSE, uint64(peer)); cerr != nil && err == nil {
			err = fmt.Errorf("closing the peer: %w", cerr)
		}
		if err == nil {
			err = shutdownUnix(t, fd, s.Shutdown)
		}
		if err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
			return -1, err
		}
	}
	if err := setSocketOptions(t, fd, s); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

// refillFrom sends what rec's payload holds for s (the messages queued
// for it, and what they carry) from the target fd `from`, for its peer to
// read.
func refillFrom(c *RestoreContext, t Target, from int, rec *ckpt.Record, s *ckpt.Socket) error {
	if s.Queued == 0 {
		return nil
	}
	data := make([]byte, s.Queued)
	if _, err := io.ReadFull(rec.Payload(), data); err != nil {
		return err
	}
	local, err := t.Copy(from)
	if err != nil {
		return err
	}
	defer local.Close()
	if err := requeue(c, t, int(local.Fd()), s.Type, data, s.Messages, s.Ancillary); err != nil {
		return fmt.Errorf("refilling the queue: %w", err)
	}
	return nil
}

// shutdownUnix shuts a restored unix socket down as sk_shutdown says (1:
// reading, 2: writing).
func shutdownUnix(t Target, fd, mask int) error { return shutdownSocket(t, fd, mask) }

// shutdownSocket shuts a restored socket down as sk_shutdown says (1:
// reading, 2: writing). An unconnected inet socket is shut down all the
// same, with ENOTCONN.
func shutdownSocket(t Target, fd, mask int) error {
	how := map[int]int{1: unix.SHUT_RD, 2: unix.SHUT_WR, 3: unix.SHUT_RDWR}
	h, ok := how[mask&3]
	if !ok {
		return nil
	}
	if _, err := t.Syscall(unix.SYS_SHUTDOWN, uint64(fd), uint64(h)); err != nil && !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("shutdown(%d): %w", h, err)
	}
	return nil
}

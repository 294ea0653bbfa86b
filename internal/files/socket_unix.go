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
// An unconnected unix datagram socket bound to a name (a syslog-style
// server socket) is bound to it again; datagrams queued and not read are
// dropped, with a warning at checkpoint time. A socket never bound, or
// whose peer is gone, is made again as such.
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
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeUnixPair: restoreUnixPair},
}

func dumpUnixEnd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	ino := fd.Link.Inode
	d, err := sys.UnixSocketDiag(ino)
	if err != nil {
		return 0, err
	}
	what := fmt.Sprintf("unix socket:[%d]", ino)
	if d.Peer == 0 {
		return dumpUnixBound(c, fd, what, d.State)
	}
	if n := fd.Info.Extra["scm_fds"]; len(n) > 0 && n[0] != "0" {
		return 0, fmt.Errorf("%s has %s fds in flight (SCM_RIGHTS not yet received): not supported", what, n[0])
	}
	end := 0
	if d.Peer < ino {
		end = 1
	}
	f := ckpt.File{Kind: ckpt.FileUnixSocket, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: ino},
		Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "connected", PairEnd: end}}
	readSocketOptions(int(fd.Copy.Fd()), f.Socket)
	ref := c.W.NewObjref()
	peer := c.Sockets[d.Peer]
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

// dumpUnixPair writes the pair object with what each end has queued.
func dumpUnixPair(c *DumpContext, typ int, ends [2]*Fd) (ckpt.Objref, error) {
	p := ckpt.UnixPair{Type: typ}
	var data [2][]byte
	for i, e := range ends {
		p.Inodes[i] = e.Link.Inode
		var err error
		if typ == unix.SOCK_STREAM {
			data[i], err = peekStream(e)
		} else {
			data[i], p.Messages[i], err = peekMessages(e, ends[1-i])
		}
		if err != nil {
			return 0, err
		}
		p.Bytes[i] = int64(len(data[i]))
	}
	ref := c.W.NewObjref()
	return ref, c.W.WriteWithPayload(ckpt.TypeUnixPair, ref, nil, &p, p.Bytes[0]+p.Bytes[1], func(w io.Writer) error {
		for _, d := range data {
			if _, err := w.Write(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// peekStream copies a stream socket's receive queue without consuming it:
// a unix stream peek walks across all queued buffers.
func peekStream(e *Fd) ([]byte, error) {
	s := int(e.Copy.Fd())
	n, err := unix.IoctlGetInt(s, unix.SIOCINQ)
	if err != nil {
		return nil, fmt.Errorf("SIOCINQ: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	if n > maxSocketQueue {
		return nil, fmt.Errorf("%d bytes queued, more than the %d crsub stores", n, maxSocketQueue)
	}
	buf := make([]byte, n)
	for {
		k, _, err := unix.Recvfrom(s, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("peeking the queue: %w", err)
		}
		if k != n {
			return nil, fmt.Errorf("peeked %d of the %d bytes queued", k, n)
		}
		return buf, nil
	}
}

// peekMessages copies a datagram or seqpacket socket's queued messages:
// MSG_PEEK shows only the first, so they are read out and sent again, in
// order, from the peer, which leaves the queue as it was (the process is
// frozen meanwhile).
func peekMessages(e, peer *Fd) ([]byte, []int, error) {
	s, p := int(e.Copy.Fd()), int(peer.Copy.Fd())
	var data []byte
	var sizes []int
	buf := make([]byte, 1<<16)
	oob := make([]byte, 256)
	for {
		n, oobn, flags, _, err := unix.Recvmsg(s, buf, oob, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err == unix.EINTR {
			continue
		}
		if err == nil && (oobn > 0 || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0) {
			err = fmt.Errorf("a queued message carries ancillary data or is larger than %d bytes", len(buf))
		}
		if err != nil {
			requeue(p, data, sizes)
			return nil, nil, err
		}
		data = append(data, buf[:n]...)
		sizes = append(sizes, n)
		if len(data) > maxSocketQueue {
			requeue(p, data, sizes)
			return nil, nil, fmt.Errorf("more than %d bytes queued", maxSocketQueue)
		}
	}
	if err := requeue(p, data, sizes); err != nil {
		return nil, nil, fmt.Errorf("putting %d queued messages back: %w", len(sizes), err)
	}
	return data, sizes, nil
}

// requeue sends messages from fd, one per size, in order.
func requeue(fd int, data []byte, sizes []int) error {
	for _, n := range sizes {
		if _, err := unix.SendmsgN(fd, data[:n], nil, nil, unix.MSG_DONTWAIT); err != nil {
			return err
		}
		data = data[n:]
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
		sizes := p.Messages[i]
		if p.Type == unix.SOCK_STREAM {
			sizes = []int{len(data)}
		}
		total := 0
		for _, n := range sizes {
			total += n
		}
		if total != len(data) {
			from.Close()
			return fmt.Errorf("unix pair: message sizes add up to %d, the queue holds %d", total, len(data))
		}
		err = requeue(int(from.Fd()), data, sizes)
		from.Close()
		if err != nil {
			return fmt.Errorf("unix pair: refilling end %d: %w", i, err)
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

func dumpUnixBound(c *DumpContext, fd *Fd, what string, state int) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	sa, err := unix.Getsockname(s)
	su, ok := sa.(*unix.SockaddrUnix)
	// x/sys reports an unnamed socket as "@" (an abstract name's leading
	// NUL, with nothing after it).
	if err == nil && ok && (su.Name == "" || su.Name == "@") {
		// Never bound: a socket made and not connected yet (the JVM
		// keeps one), or one whose peer is gone, which reads the end of
		// the stream and cannot be written.
		sock := &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "unbound"}
		if state != tcpClose {
			sock.State = "disconnected"
		}
		readSocketOptions(s, sock)
		f := ckpt.File{Kind: ckpt.FileUnixBound, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	if err != nil || !ok || su.Name == "" || fd.Socket.Type == unix.SOCK_STREAM {
		return 0, &UnsupportedError{Fd: fd.Num, What: what + " without a peer and without a name"}
	}
	if n, err := unix.IoctlGetInt(s, unix.SIOCINQ); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued datagrams of a bound unix socket are not kept", "fd", fd.Num, "name", su.Name, "bytes", n)
	}
	f := ckpt.File{Kind: ckpt.FileUnixBound, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode},
		Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "bound", Local: su.Name}}
	readSocketOptions(s, f.Socket)
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreUnixBound(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s != nil && (s.State == "unbound" || s.State == "disconnected") {
		return restoreUnixUnbound(t, f)
	}
	if s == nil || s.Local == "" {
		return -1, errors.New("bound unix socket without its name")
	}
	if s.Local[0] != '@' {
		if err := clearStaleSocket(s.Local, s.Type); err != nil {
			return -1, err
		}
	}
	raw, err := unixSockaddr(s.Local)
	if err != nil {
		return -1, err
	}
	fdv, err := t.Syscall(unix.SYS_SOCKET, unix.AF_UNIX, uint64(s.Type|unix.SOCK_CLOEXEC), 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := int(fdv)
	addr, err := t.Scratch(raw)
	if err == nil {
		_, err = t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw)))
	}
	if err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("bind %s: %w", s.Local, err)
	}
	if err := setSocketOptions(t, fd, s); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
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

// restoreUnixUnbound makes a socket that was never bound: a new one, or, if
// its peer was gone, one end of a pair whose other end is closed at once.
func restoreUnixUnbound(t Target, f *ckpt.File) (int, error) {
	s := f.Socket
	var fd int
	if s.State == "unbound" {
		fdv, err := t.Syscall(unix.SYS_SOCKET, unix.AF_UNIX, uint64(s.Type|unix.SOCK_CLOEXEC), 0)
		if err != nil {
			return -1, fmt.Errorf("socket: %w", err)
		}
		fd = int(fdv)
	} else {
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
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(binary.LittleEndian.Uint32(b[4:]))); err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
			return -1, fmt.Errorf("closing the peer: %w", err)
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

package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// What is queued for reading at a unix socket, with what its messages
// carry: the unix socket records (a pair's ends, a socket whose peer is
// gone, a bound datagram socket) share it.
//
// The files a queued message carries (SCM_RIGHTS) are seen by peeking it:
// MSG_PEEK installs them in crsub's own process. Each is examined as the
// fds of the tree are, before anything is dumped (a pipe's end may be only
// in a message, its other end in the tree), and dumped as a file record of
// the image like theirs, shared with an fd of the tree holding the same
// open file description. A restart opens each in the process refilling
// the queue and sends it again with its message. The sender's credentials
// (SCM_CREDENTIALS, shown where the receiver has SO_PASSCRED) are sent
// again too, as crsub may (it has CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID);
// a sender gone since gets crsub's own pid instead, with a warning.
//
// On a stream, a peek shows the bytes queued before the ones carrying fds
// and those together, with the fds, whatever its size (it reaches the next
// buffer even with nothing left to copy, and takes its fds): they are sent
// again as one chunk, and a read of only the first bytes gets the fds a
// little early.

// queuedMessage is one message queued at a unix socket (a stream's chunk
// up to the bytes that carry fds), with what it carries.
type queuedMessage struct {
	data  []byte
	fds   []*Fd       // the files it carries, examined
	creds *unix.Ucred // its sender's credentials, if the receiver asked
	from  string      // the name of its sender (datagrams), "" if unnamed
}

// carries reports whether a message has anything besides its bytes.
func (m *queuedMessage) carries() bool { return len(m.fds) > 0 || m.creds != nil }

// PeekPassed peeks the queue of a unix socket of the tree that has fds in
// flight (fdinfo scm_fds), before anything is dumped, and returns the
// files its messages carry: examine makes an Fd of each fd the peek
// installed in this process (it may close the fd: the Fd keeps a copy).
// The driver counts them with the tree's fds; Close closes them.
// Other sockets, and one peeked already through another fd, give nothing.
func (c *DumpContext) PeekPassed(fd *Fd, examine func(local int) (*Fd, error)) ([]*Fd, error) {
	if fd.Socket == nil || fd.Socket.Family != unix.AF_UNIX || fd.Socket.Listening {
		return nil, nil
	}
	if n := fd.Info.Extra["scm_fds"]; len(n) == 0 || n[0] == "0" {
		return nil, nil
	}
	ino := fd.Link.Inode
	if _, done := c.passed[ino]; done {
		return nil, nil
	}
	msgs, err := c.peekUnix(fd, fd.Socket.Type, examine)
	if err != nil {
		return nil, fmt.Errorf("unix socket:[%d]: %w", ino, err)
	}
	if c.passed == nil {
		c.passed = map[uint64][]queuedMessage{}
	}
	c.passed[ino] = msgs
	var all []*Fd
	for _, m := range msgs {
		all = append(all, m.fds...)
	}
	c.passedFds = append(c.passedFds, all...)
	for _, f := range all {
		// A socket carried with fds queued itself (perhaps this one):
		// what those carry is in the checkpoint too.
		more, err := c.PeekPassed(f, examine)
		if err != nil {
			return nil, err
		}
		all = append(all, more...)
	}
	return all, nil
}

// Close closes what the context holds: the copies of the files queued
// messages carry, and the sock_diag connections.
func (c *DumpContext) Close() {
	for _, f := range c.passedFds {
		f.Copy.Close()
	}
	c.passedFds = nil
	c.closeDiags()
}

// queueOf returns what is queued at a unix socket: peeked before anything
// was dumped if its messages carry files, else now.
func queueOf(c *DumpContext, e *Fd, typ int) ([]queuedMessage, error) {
	if msgs, ok := c.passed[e.Link.Inode]; ok {
		return msgs, nil
	}
	return c.peekUnix(e, typ, nil)
}

// dumpQueue turns a queue into its bytes, message sizes (for a stream only
// if a chunk carries something) and what the messages carry, dumping the
// files they carry (c.DumpFd) and returning their records, which the
// queue's record depends on.
func dumpQueue(c *DumpContext, typ int, msgs []queuedMessage) (data []byte, sizes []int, anc []ckpt.Ancillary, deps []ckpt.Objref, err error) {
	keepSizes := typ != unix.SOCK_STREAM
	for i, m := range msgs {
		data = append(data, m.data...)
		sizes = append(sizes, len(m.data))
		if !m.carries() {
			continue
		}
		keepSizes = true
		a := ckpt.Ancillary{Message: i}
		if m.creds != nil {
			a.Creds = &ckpt.MsgCreds{Pid: m.creds.Pid, UID: m.creds.Uid, GID: m.creds.Gid}
		}
		for _, f := range m.fds {
			if c.DumpFd == nil {
				return nil, nil, nil, nil, errors.New("a queued message carries files, and the driver dumps none")
			}
			ref, err := c.DumpFd(f)
			if err != nil {
				return nil, nil, nil, nil, fmt.Errorf("a file a queued message carries (%s): %w", describe(f), err)
			}
			a.Files = append(a.Files, ref)
			deps = append(deps, ref)
		}
		anc = append(anc, a)
	}
	if !keepSizes {
		sizes = nil
	}
	return data, sizes, anc, deps, nil
}

// peekUnix copies the messages queued at a unix socket without consuming
// them: with SO_PEEK_OFF set, each MSG_PEEK shows the message after the
// last one peeked (on a stream, the bytes up to the next that carry fds or
// come from another sender). The socket's own peek offset is put back
// after. The fds a message carries are installed here by the peek: examine
// makes Fds of them; without it, a message carrying fds is an error.
func (c *DumpContext) peekUnix(e *Fd, typ int, examine func(local int) (*Fd, error)) (msgs []queuedMessage, err error) {
	s := int(e.Copy.Fd())
	queued, err := unix.IoctlGetInt(s, unix.SIOCINQ)
	if err != nil {
		return nil, fmt.Errorf("SIOCINQ: %w", err)
	}
	old, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_PEEK_OFF, old)
	defer func() {
		if err != nil {
			for _, m := range msgs {
				for _, f := range m.fds {
					f.Copy.Close()
				}
			}
			msgs = nil
		}
	}()
	d, derr := c.unixDiag(e, e.Link.Inode)
	if derr != nil {
		return nil, derr
	}
	readShut := d.Shutdown&1 != 0
	total := 0
	buf := make([]byte, 1<<20)
	if typ == unix.SOCK_STREAM && queued > len(buf) {
		buf = make([]byte, min(queued, maxSocketQueue+1))
	}
	oob := make([]byte, 8192)
	for {
		n, oobn, flags, from, err := unix.Recvmsg(s, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return msgs, fmt.Errorf("peeking the queue: %w", err)
		}
		m := queuedMessage{data: append([]byte(nil), buf[:n]...)}
		if su, ok := from.(*unix.SockaddrUnix); ok && su.Name != "@" {
			m.from = su.Name
		}
		if oobn > 0 {
			if err := parseAncillary(oob[:oobn], &m, examine); err != nil {
				return append(msgs, m), err
			}
		}
		if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
			return append(msgs, m), fmt.Errorf("a queued message or its ancillary data is larger than %d and %d bytes", len(buf), len(oob))
		}
		if n == 0 && len(m.fds) == 0 {
			if typ == unix.SOCK_STREAM || readShut {
				break // the end of the stream, or of the queue of a socket shut down for reading
			}
			// The peek offset cannot move past it.
			return msgs, errors.New("a zero-length message is queued: not supported")
		}
		msgs = append(msgs, m)
		total += n
		if total > maxSocketQueue {
			return msgs, fmt.Errorf("more than %d bytes queued", maxSocketQueue)
		}
	}
	if typ == unix.SOCK_STREAM && total != queued {
		return msgs, fmt.Errorf("peeked %d of the %d bytes queued", total, queued)
	}
	return msgs, nil
}

// parseAncillary reads a peeked message's control messages into m: the
// fds it carries (each made an Fd by examine, or closed on error) and its
// sender's credentials.
func parseAncillary(oob []byte, m *queuedMessage, examine func(local int) (*Fd, error)) error {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("ancillary data: %w", err)
	}
	var fds []int
	for _, cm := range cmsgs {
		switch {
		case cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SCM_RIGHTS:
			more, err := unix.ParseUnixRights(&cm)
			if err != nil {
				return fmt.Errorf("SCM_RIGHTS: %w", err)
			}
			fds = append(fds, more...)
		case cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SCM_CREDENTIALS:
			cred, err := unix.ParseUnixCredentials(&cm)
			if err != nil {
				return fmt.Errorf("SCM_CREDENTIALS: %w", err)
			}
			m.creds = cred
		case cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SCM_SECURITY:
			// The LSM label of the sender (SO_PASSSEC): the receiver's
			// own to ask for again.
		default:
			for _, fd := range fds {
				unix.Close(fd)
			}
			return fmt.Errorf("a queued message carries ancillary data of level %d, type %d: not supported", cm.Header.Level, cm.Header.Type)
		}
	}
	for i, fd := range fds {
		if examine == nil {
			for _, fd := range fds[i:] {
				unix.Close(fd)
			}
			return errors.New("a queued message carries fds (SCM_RIGHTS) sent since the tree was examined")
		}
		f, err := examine(fd)
		if err != nil {
			for _, fd := range fds[i+1:] {
				unix.Close(fd)
			}
			return fmt.Errorf("a file a queued message carries: %w", err)
		}
		m.fds = append(m.fds, f)
	}
	return nil
}

// requeue sends data from the local socket fd, as messages of the given
// sizes (one, for a stream without sizes), each with what anc says it
// carries: its files, opened in t (the process the queue is refilled in)
// and sent from here, and its sender's credentials.
func requeue(c *RestoreContext, t Target, fd int, typ int, data []byte, sizes []int, anc []ckpt.Ancillary) error {
	if typ == unix.SOCK_STREAM && len(sizes) == 0 && len(data) > 0 {
		sizes = []int{len(data)}
	}
	total := 0
	for _, n := range sizes {
		if n < 0 {
			return fmt.Errorf("a message of %d bytes", n)
		}
		total += n
	}
	if total != len(data) {
		return fmt.Errorf("message sizes add up to %d, the queue holds %d", total, len(data))
	}
	carried := map[int]ckpt.Ancillary{}
	for _, a := range anc {
		if a.Message < 0 || a.Message >= len(sizes) {
			return fmt.Errorf("ancillary data of message %d of %d", a.Message, len(sizes))
		}
		carried[a.Message] = a
	}
	restore, err := roomToSend(fd, len(data), len(sizes))
	if err != nil {
		return err
	}
	defer restore()
	for i, n := range sizes {
		var oob []byte
		var locals []*os.File
		a, ok := carried[i]
		if ok {
			var err error
			if oob, locals, err = ancillaryOf(c, t, a); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		err := sendQueued(fd, data[:n], oob)
		if err != nil && a.Creds != nil && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EPERM)) {
			// Its sender's pid is not there any more: crsub's own.
			t.Warn("a queued message's sender is gone: it now comes from crsub's pid", "pid", a.Creds.Pid)
			a.Creds = &ckpt.MsgCreds{Pid: int32(os.Getpid()), UID: a.Creds.UID, GID: a.Creds.GID}
			for _, l := range locals {
				l.Close()
			}
			if oob, locals, err = ancillaryOf(c, t, a); err == nil {
				err = sendQueued(fd, data[:n], oob)
			}
		}
		for _, l := range locals {
			l.Close()
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		data = data[n:]
	}
	return nil
}

// roomToSend makes the send buffer of the local socket fd large enough for
// n bytes in k messages to wait in it unread (what a unix socket sends is
// counted against its send buffer until read), and returns what puts the
// buffer's size and lock back.
func roomToSend(fd, n, k int) (func(), error) {
	old, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return nil, fmt.Errorf("SO_SNDBUF: %w", err)
	}
	// Each message's buffer costs more than its bytes: its truesize.
	need := 2*n + 2048*k + 65536
	if need <= old {
		return func() {}, nil
	}
	lock, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK)
	if err != nil {
		return nil, fmt.Errorf("SO_BUF_LOCK: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, need/2); err != nil {
		return nil, fmt.Errorf("SO_SNDBUFFORCE for %d bytes queued: %w", n, err)
	}
	return func() {
		// The kernel doubles what it is given.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, old/2)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK, lock)
	}, nil
}

// sendQueued sends one message (a stream's chunk: what a short send left,
// without the control messages again) from fd.
func sendQueued(fd int, data, oob []byte) error {
	for {
		n, err := unix.SendmsgN(fd, data, oob, nil, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n >= len(data) {
			return nil
		}
		if n == 0 {
			return fmt.Errorf("sent %d of %d bytes", n, len(data))
		}
		data, oob = data[n:], nil
	}
}

// ancillaryOf builds the control messages of a queued message: its files,
// opened in t and copied here (the copies returned, to close once sent),
// and its credentials.
func ancillaryOf(c *RestoreContext, t Target, a ckpt.Ancillary) ([]byte, []*os.File, error) {
	var oob []byte
	var locals []*os.File
	if len(a.Files) > 0 {
		if c.Open == nil {
			return nil, nil, errors.New("a queued message carries files, and the driver opens none")
		}
		fds := make([]int, 0, len(a.Files))
		for _, ref := range a.Files {
			tfd, err := c.Open(ref, t)
			if err == nil {
				var l *os.File
				if l, err = t.Copy(tfd); err == nil {
					locals = append(locals, l)
					fds = append(fds, int(l.Fd()))
				}
			}
			if err != nil {
				for _, l := range locals {
					l.Close()
				}
				return nil, nil, fmt.Errorf("a file it carries: %w", err)
			}
		}
		oob = append(oob, unix.UnixRights(fds...)...)
	}
	if a.Creds != nil {
		oob = append(oob, unix.UnixCredentials(&unix.Ucred{Pid: a.Creds.Pid, Uid: a.Creds.UID, Gid: a.Creds.GID})...)
	}
	return oob, locals, nil
}

package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A unix socket bound to a name and not connected (a syslog-style server
// socket; a stream or seqpacket socket bound and not listening yet), or a
// datagram socket connected to a named socket that is not connected back to it (a
// client of such a server, inside the tree or outside, or a socket
// connected to itself), is made again by name: bound to its own name if it
// has one, connected to its peer's once every file is restored (its peer
// may come later in the image). The datagrams queued for it are kept, each
// with the name of its sender: they are sent again, once every file is
// restored and before it connects, from the restored socket bound to that
// name, or from an unnamed socket if none is (the sender was unnamed, or
// is outside the tree: its name is then lost, with a warning).

// dumpNamed writes a socket bound to name (if not "") and connected to
// peer (if not ""), the socket of inode peerIno.
func dumpNamed(c *DumpContext, fd *Fd, what, name, peer string, peerIno uint64) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	sock := &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "bound"}
	if name != "" && name != "@" {
		recordUnixName(fd, name, sock)
	}
	if peer != "" {
		sock.State, sock.Peer, sock.PeerInode = "connected", peer, peerIno
	}
	var msgs []queuedMessage
	if fd.Socket.Type == unix.SOCK_DGRAM {
		// A stream or seqpacket socket here is not connected: nothing
		// is queued for it.
		var err error
		if msgs, err = queueOf(c, fd, fd.Socket.Type); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if carriesQueuingSocket(msgs) {
			return 0, &UnsupportedError{Fd: fd.Num, What: what + " queues a unix socket that has fds in flight itself"}
		}
	}
	data, sizes, anc, deps, err := dumpQueue(c, fd.Socket.Type, msgs)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	sock.Queued, sock.Messages, sock.Ancillary = int64(len(data)), sizes, anc
	if len(msgs) > 0 {
		sock.Senders = make([]string, len(msgs))
		for i, m := range msgs {
			sock.Senders[i] = m.from
		}
	}
	readSocketOptions(s, sock)
	f := ckpt.File{Kind: ckpt.FileUnixBound, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFileWithPayload(fd, ref, deps, &f, sock.Queued, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// namedSocket is a restored unix socket bound to a name: the target that
// restored it and its file record, whose fd there the driver knows once
// it is placed.
type namedSocket struct {
	t   Target
	ref ckpt.Objref
}

func restoreNamed(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s.Queued != rec.PayloadLen || s.Queued < 0 {
		return -1, fmt.Errorf("%d bytes queued, the payload holds %d", s.Queued, rec.PayloadLen)
	}
	if len(s.Senders) != 0 && len(s.Senders) != len(s.Messages) {
		return -1, fmt.Errorf("%d senders for %d datagrams", len(s.Senders), len(s.Messages))
	}
	data := make([]byte, s.Queued)
	if _, err := io.ReadFull(rec.Payload(), data); err != nil {
		return -1, err
	}
	fdv, err := t.Syscall(unix.SYS_SOCKET, unix.AF_UNIX, uint64(s.Type|unix.SOCK_CLOEXEC), 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if s.Local != "" {
		if err := bindUnix(c, t, fd, f.Identity.Inode, s); err != nil {
			return fail(err)
		}
		if c.names == nil {
			c.names = map[string]namedSocket{}
		}
		c.names[s.Local] = namedSocket{t: t, ref: rec.Objref}
	}
	if err := setSocketOptions(t, fd, s); err != nil {
		return fail(err)
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	// The files the datagrams carry are opened now: the driver closes
	// what it opened and no fd holds before the end. crsub keeps copies
	// until they are sent.
	oobs := map[int][]byte{}
	var locals []*os.File
	for _, a := range s.Ancillary {
		oob, l, err := ancillaryOf(c, t, a)
		locals = append(locals, l...)
		if err != nil {
			for _, l := range locals {
				l.Close()
			}
			return fail(fmt.Errorf("datagram %d: %w", a.Message, err))
		}
		oobs[a.Message] = oob
	}
	if len(data) > 0 || s.Peer != "" {
		// Every socket bound to a name is restored by then: the senders
		// of the queued datagrams, and the peer.
		c.settle(rec.Objref, func(t Target, fd int) error {
			if len(data) > 0 {
				if s.Local == "" {
					t.Warn("datagrams queued for an unnamed unix socket are dropped: nothing can send to it", "bytes", len(data))
				} else {
					err := refillDatagrams(c, t, fd, f.Identity.Inode, s, data, oobs)
					for _, l := range locals {
						l.Close()
					}
					if err != nil {
						return err
					}
				}
			}
			if s.Peer == "" {
				return nil
			}
			if file := c.unixFiles[s.PeerInode]; s.PeerInode != 0 && file != nil && c.hostPath(t, "/") != "/" {
				// A target in a mount namespace of its own has another
				// /proc, and the peer's path may lead elsewhere (its
				// file removed): crsub connects the target's socket
				// through its own fd on the peer's file.
				return connectThrough(t, fd, file.Int(), s.Peer)
			}
			raw, to, err := c.unixAddr(t, s.PeerInode, s.Peer, os.Getpid())
			if err != nil {
				return err
			}
			addr, err := t.Scratch(raw)
			if err == nil {
				_, err = t.Syscall(unix.SYS_CONNECT, uint64(fd), addr, uint64(len(raw)))
			}
			if err != nil {
				return fmt.Errorf("connect %s (as %s): %w", s.Peer, to, err)
			}
			return nil
		})
	}
	return fd, nil
}

// refillDatagrams sends the datagrams queued for the named socket s (the
// target's fd, of inode ino in the image) to it again, each from the
// restored socket bound to its sender's name, or from an unnamed one, with
// its control messages (oobs, by datagram).
func refillDatagrams(c *RestoreContext, t Target, fd int, ino uint64, s *ckpt.Socket, data []byte, oobs map[int][]byte) error {
	var to *unix.SockaddrUnix
	if _, through, err := c.unixAddr(nil, ino, s.Local, 0); err == nil && through != s.Local {
		to = &unix.SockaddrUnix{Name: through} // its file, crsub's fd on it
	} else {
		name, err := c.reachUnix(t, s.Local)
		if err != nil {
			return err
		}
		defer name.Close()
		to = name.Addr
	}
	// Unnamed datagrams come from a socket beside the receiver: in its
	// network namespace, where its abstract name is.
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	beside, err := sys.SocketBeside(int(local.Fd()), unix.AF_UNIX, s.Type, 0)
	local.Close()
	if err != nil {
		return err
	}
	defer beside.Close()
	unnamed := beside.Int()
	total := 0
	for _, n := range s.Messages {
		total += n
	}
	if total != len(data) {
		return fmt.Errorf("message sizes add up to %d, the queue holds %d", total, len(data))
	}
	for i, n := range s.Messages {
		from, sender := unnamed, ""
		if i < len(s.Senders) {
			sender = s.Senders[i]
		}
		if sender != "" {
			if ns, ok := c.names[sender]; ok {
				if sfd, placed := ns.t.FdOf(ns.ref); placed {
					local, err := ns.t.Copy(sfd)
					if err != nil {
						return fmt.Errorf("the sender %s: %w", sender, err)
					}
					defer local.Close()
					from = int(local.Fd())
				}
			}
			if from == unnamed {
				t.Warn("a datagram queued for a unix socket comes from an unnamed socket: its sender is not in the tree", "socket", s.Local, "sender", sender)
			}
		}
		err := unix.Sendmsg(from, data[:n], oobs[i], to, unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				err = fmt.Errorf("%w (the queue is fuller than the socket takes)", err)
			}
			return fmt.Errorf("datagram %d to %s: %w", i, s.Local, err)
		}
		data = data[n:]
	}
	return nil
}

// connectThrough connects the target's datagram socket fd to the socket
// whose file crsub holds an O_PATH fd on (file), from a copy of fd in
// crsub: a datagram connect only names the peer.
func connectThrough(t Target, fd, file int, peer string) error {
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	defer local.Close()
	through := "/proc/self/fd/" + strconv.Itoa(file)
	if err := unix.Connect(int(local.Fd()), &unix.SockaddrUnix{Name: through}); err != nil {
		return fmt.Errorf("connect %s (as %s): %w", peer, through, os.NewSyscallError("connect", err))
	}
	return nil
}

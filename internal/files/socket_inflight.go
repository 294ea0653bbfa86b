package files

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A connection waiting in the accept queue of a listener of the tree
// (unix stream or seqpacket, or TCP), whose client end the tree holds too
// and which carries no data yet, is connected again at restart, as CRIU
// does: the client's file record depends on the listener's, written ahead
// of it if need be, and a new socket connects to the restored listener and
// becomes the client end. The listener finds the connection in its accept
// queue again. A waiting connection whose client is outside the tree, or
// which the client has sent data over (held by the listener's side, which
// no fd reaches), cannot be restored: CheckAcceptQueue refuses it, and the
// checkpoint lets the tree run to accept it first.
var inflightKind = &Kind{
	Files: []string{ckpt.FileInflight},
	Claims: func(c *DumpContext, fd *Fd) bool {
		return fd.Socket != nil && !fd.Socket.Listening && c.Inflight[fd.Link.Inode] != nil
	},
	Dump:    dumpInflight,
	Restore: restoreInflight,
}

// Inflight is the listener a waiting connection's client end connected to,
// and the address it connected to.
type Inflight struct {
	Listener *Fd
	Peer     string
}

// unixInflight finds the client ends of the connections waiting in a unix
// listener's accept queue (sock_diag's icons), by inode, with the name to
// connect to; why says what keeps one of them from being restored.
func unixInflight(c *DumpContext, l *Fd) (clients map[uint64]string, why string, err error) {
	d, err := c.unixDiag(l, l.Link.Inode)
	if err != nil {
		return nil, "", err
	}
	if d.Name == "" || d.Name == "@" {
		return nil, "the listener has no name to connect to", nil
	}
	clients = map[uint64]string{}
	for _, ino := range d.Icons {
		switch {
		case ino == 0:
			return nil, "a client closed its end since", nil
		case c.Sockets[ino] == nil:
			return nil, fmt.Sprintf("the client socket:[%d] is outside the checkpoint", ino), nil
		}
		cd, err := c.unixDiag(l, ino)
		if err != nil {
			return nil, "", err
		}
		if cd.WQueue != 0 {
			return nil, fmt.Sprintf("the client socket:[%d] sent data, which no fd reads before the connection is accepted", ino), nil
		}
		clients[ino] = d.Name
	}
	if len(clients) == 0 {
		return nil, "sock_diag lists none of them", nil
	}
	return clients, "", nil
}

// tcpInflight finds the client ends of the connections waiting in a TCP
// listener's accept queue: the established sockets of its port that no
// file holds are their server ends, and the tree's sockets connected to
// them their clients.
func tcpInflight(c *DumpContext, l *Fd) (clients map[uint64]string, why string, err error) {
	sa, err := unix.Getsockname(int(l.Copy.Fd()))
	if err != nil {
		return nil, "", fmt.Errorf("getsockname: %w", err)
	}
	local, err := netip.ParseAddrPort(sockaddrString(sa))
	if err != nil {
		return nil, "", err
	}
	diag, err := c.diag(l)
	if err != nil {
		return nil, "", err
	}
	socks, err := diag.TCPSockets(l.Socket.Family, 1<<tcpEstablished)
	if err != nil {
		return nil, "", err
	}
	type conn struct{ local, remote netip.AddrPort }
	unmap := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
	tree := map[conn]*Fd{}
	for ino, fd := range c.Sockets {
		s := fd.Socket
		if s == nil || s.Listening || s.Type != unix.SOCK_STREAM || (s.Family != unix.AF_INET && s.Family != unix.AF_INET6) || s.TCPState != tcpEstablished {
			continue
		}
		ls, err1 := unix.Getsockname(int(fd.Copy.Fd()))
		rs, err2 := unix.Getpeername(int(fd.Copy.Fd()))
		if err1 != nil || err2 != nil {
			continue
		}
		la, err1 := netip.ParseAddrPort(sockaddrString(ls))
		ra, err2 := netip.ParseAddrPort(sockaddrString(rs))
		if err1 == nil && err2 == nil {
			tree[conn{unmap(la), unmap(ra)}] = c.Sockets[ino]
		}
	}
	clients = map[uint64]string{}
	for _, s := range socks {
		if s.Inode != 0 || s.Local.Port() != local.Port() || !(local.Addr().IsUnspecified() || s.Local.Addr().Unmap() == local.Addr().Unmap()) {
			continue
		}
		client := tree[conn{unmap(s.Remote), unmap(s.Local)}]
		switch {
		case client == nil:
			return nil, fmt.Sprintf("the client at %s is outside the checkpoint", unmap(s.Remote)), nil
		case s.RQueue != 0:
			return nil, fmt.Sprintf("the client at %s sent %d bytes, which no fd reads before the connection is accepted", unmap(s.Remote), s.RQueue), nil
		}
		if n, err := unix.IoctlGetInt(int(client.Copy.Fd()), unix.SIOCOUTQ); err != nil || n != 0 {
			return nil, fmt.Sprintf("the client at %s has bytes in flight", unmap(s.Remote)), nil
		}
		clients[client.Link.Inode] = unmap(s.Local).String()
	}
	if len(clients) < l.Socket.AcceptQueue {
		return nil, fmt.Sprintf("%d of them not found", l.Socket.AcceptQueue-len(clients)), nil
	}
	return clients, "", nil
}

// dumpListenerAhead writes a listener's file record before its fd comes,
// once: the listener kinds look it up (dumpOnce).
func dumpListenerAhead(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	if ref, ok := c.ahead[fd.Link.Inode]; ok {
		return ref, nil
	}
	k := inetListenKind
	if fd.Socket.Family == unix.AF_UNIX {
		k = unixListenKind
	}
	if !k.Claims(c, fd) {
		return 0, fmt.Errorf("%s does not dump socket:[%d]", k, fd.Link.Inode)
	}
	return k.Dump(c, fd)
}

// dumpOnce makes a socket kind's Dump write a socket's file record only
// once: the socket may have been dumped ahead (dumpListenerAhead). A socket has
// one open file description.
func dumpOnce(dump func(*DumpContext, *Fd) (ckpt.Objref, error)) func(*DumpContext, *Fd) (ckpt.Objref, error) {
	return func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		if ref, ok := c.ahead[fd.Link.Inode]; ok {
			return ref, nil
		}
		ref, err := dump(c, fd)
		if err == nil {
			if c.ahead == nil {
				c.ahead = map[uint64]ckpt.Objref{}
			}
			c.ahead[fd.Link.Inode] = ref
		}
		return ref, err
	}
}

func dumpInflight(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	in := c.Inflight[fd.Link.Inode]
	lref, err := dumpListenerAhead(c, in.Listener)
	if err != nil {
		return 0, fmt.Errorf("its listener (fd %d of pid %d): %w", in.Listener.Num, in.Listener.Pid, err)
	}
	s := int(fd.Copy.Fd())
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: fd.Socket.Type, Protocol: fd.Socket.Protocol, State: "in-flight", Peer: in.Peer}
	if sock.Family == unix.AF_UNIX {
		sock.Protocol = 0
		d, err := c.unixDiag(fd, fd.Link.Inode)
		if err != nil {
			return 0, err
		}
		if d.Name != "" && d.Name != "@" {
			recordUnixName(fd, d.Name, sock)
		}
		sock.Shutdown, sock.PeerInode = d.Shutdown, in.Listener.Link.Inode
	}
	readSocketOptions(s, sock)
	f := ckpt.File{Kind: ckpt.FileInflight, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, []ckpt.Objref{lref}, &f)
}

func restoreInflight(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.Peer == "" || len(rec.Deps) == 0 {
		return -1, errors.New("a waiting connection's client without its listener")
	}
	if c.Open == nil {
		return -1, errors.New("a waiting connection's client needs the driver to open its listener")
	}
	// The listener first, listening: the driver keeps the fd.
	if _, err := c.Open(rec.Deps[0], t); err != nil {
		return -1, fmt.Errorf("its listener: %w", err)
	}
	var peer []byte
	var err error
	if s.Family == unix.AF_UNIX {
		peer, _, err = c.unixAddr(t, s.PeerInode, s.Peer, os.Getpid())
	} else {
		peer, err = rawSockaddr(s.Family, s.Peer)
	}
	if err != nil {
		return -1, err
	}
	fd, err := socketWithOptions(t, s)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if s.Family == unix.AF_UNIX && s.Local != "" {
		if err := bindUnix(c, t, fd, f.Identity.Inode, s); err != nil {
			return fail(err)
		}
	}
	addr, err := t.Scratch(peer)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_CONNECT, uint64(fd), addr, uint64(len(peer))); err != nil {
		return fail(fmt.Errorf("connect %s: %w", s.Peer, err))
	}
	if s.Family == unix.AF_UNIX {
		if err := shutdownUnix(t, fd, s.Shutdown); err != nil {
			return fail(err)
		}
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// Listening TCP sockets, IPv4 and IPv6, are recreated by address: bound to
// the same address and port with the same options, listening again.
// Connections waiting in the accept queue at checkpoint time are connected
// again by their clients if the tree holds them (inflightKind; see
// CheckAcceptQueue).
var inetListenKind = &Kind{
	Files: []string{ckpt.FileSocket},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM && s.Listening
	},
	Dump:    dumpOnce(dumpSocket),
	Restore: restoreInetListen,
}

func dumpSocket(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	family, typ, proto := fd.Socket.Family, fd.Socket.Type, fd.Socket.Protocol
	what := fmt.Sprintf("socket:[%d]", fd.Link.Inode)
	sa, err := unix.Getsockname(s)
	if err != nil {
		return 0, fmt.Errorf("%s: getsockname: %w", what, err)
	}
	backlog := listenBacklog
	if fd.Socket.Backlog > 0 {
		backlog = fd.Socket.Backlog
	}
	sock := &ckpt.Socket{Family: family, Type: typ, Protocol: proto, State: "listen", Local: sockaddrString(sa), Backlog: backlog, Options: map[string]int{}}
	readSocketOptions(s, sock)
	sock.BindReusePort = sock.Options["SO_REUSEPORT"] == 0 && sharesPort(c, fd, sock.Local)
	f := ckpt.File{Kind: ckpt.FileSocket, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// sharesPort reports whether another listener of the tree is bound to the
// address local of the listener fd.
func sharesPort(c *DumpContext, fd *Fd, local string) bool {
	for ino, o := range c.Sockets {
		if ino == fd.Link.Inode || o.Socket == nil || !o.Socket.Listening || o.Socket.Family != fd.Socket.Family || o.Socket.Type != fd.Socket.Type {
			continue
		}
		if sa, err := unix.Getsockname(int(o.Copy.Fd())); err == nil && sockaddrString(sa) == local {
			return true
		}
	}
	return false
}

func restoreInetListen(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.State != "listen" {
		return -1, fmt.Errorf("socket:[%d]: no listening socket state in the image", f.Identity.Inode)
	}
	fd, err := socketWithOptions(t, s)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	// Connections accepted from it may be restored already, bound to its
	// port: binding it beside them needs SO_REUSEADDR for the time of the
	// bind and listen (theirs is on until the end, see restoreTCP).
	reuse := s.Options["SO_REUSEADDR"] != 0
	if !reuse {
		if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail(fmt.Errorf("setsockopt SO_REUSEADDR=1: %w", err))
		}
	}
	if s.BindReusePort {
		// Another listener binds to its port with SO_REUSEPORT.
		if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail(fmt.Errorf("setsockopt SO_REUSEPORT=1: %w", err))
		}
		c.settle(rec.Objref, func(t Target, fd int) error {
			if err := setsockoptInt(t, fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 0); err != nil {
				return fmt.Errorf("setsockopt SO_REUSEPORT=0: %w", err)
			}
			return nil
		})
	}
	raw, err := rawSockaddr(s.Family, s.Local)
	if err != nil {
		return fail(err)
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw))); err != nil {
		return fail(fmt.Errorf("bind %s: %w", s.Local, err))
	}
	backlog := s.Backlog
	if backlog <= 0 {
		backlog = listenBacklog
	}
	if _, err := t.Syscall(unix.SYS_LISTEN, uint64(fd), uint64(backlog)); err != nil {
		return fail(fmt.Errorf("listen on %s: %w", s.Local, err))
	}
	if !reuse {
		if err := clearReuseAddr(t, fd); err != nil {
			return fail(err)
		}
	}
	if f.Flags&unix.O_NONBLOCK != 0 {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
			return fail(err)
		}
	}
	return fd, nil
}

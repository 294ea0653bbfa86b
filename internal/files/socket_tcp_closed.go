package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A TCP socket in state CLOSE without a peer — made, perhaps given options
// and bound, never connected nor listening, or disconnected — is made
// again with its options, bound again if it was. One that closed after a
// connection (reset, or both sides done) still names its peer, and reads
// differently from a new one: tcpEstablishedKind rebuilds it.
var tcpClosedKind = &Kind{
	Files: []string{ckpt.FileTCPClosed},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		s := fd.Socket
		return s != nil && (s.Family == unix.AF_INET || s.Family == unix.AF_INET6) && s.Type == unix.SOCK_STREAM &&
			s.Protocol == unix.IPPROTO_TCP && !s.Listening && s.TCPState == tcpClose && s.TCPPeer == ""
	},
	Dump:    dumpTCPClosed,
	Restore: restoreTCPClosed,
}

func dumpTCPClosed(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	sock := &ckpt.Socket{Family: fd.Socket.Family, Type: unix.SOCK_STREAM, Protocol: fd.Socket.Protocol, State: "unbound"}
	sa, err := unix.Getsockname(s)
	if err != nil {
		return 0, fmt.Errorf("tcp socket:[%d]: getsockname: %w", fd.Link.Inode, err)
	}
	if local := sockaddrString(sa); !isUnboundAddr(local) {
		sock.Local, sock.State = local, "bound"
	}
	readSocketOptions(s, sock)
	// A shutdown is kept though the socket never connected: reading one
	// shut down sees the end of the stream (restart --tcp-close leaves
	// such sockets). Poll tells reading's; writing's shows nowhere, and a
	// closed socket refuses to write either way.
	pfd := []unix.PollFd{{Fd: int32(s), Events: unix.POLLRDHUP}}
	if n, err := unix.Poll(pfd, 0); err == nil && n == 1 && pfd[0].Revents&unix.POLLRDHUP != 0 {
		sock.Shutdown = unix.SHUT_RD + 1
	}
	f := ckpt.File{Kind: ckpt.FileTCPClosed, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreTCPClosed(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil {
		return -1, fmt.Errorf("tcp socket:[%d] without socket state", f.Identity.Inode)
	}
	fd, err := newInetSocket(t, s, f.Flags)
	if err != nil || s.Shutdown&(unix.SHUT_RD+1) == 0 {
		return fd, err
	}
	// The kernel keeps the shutdown of a socket not connected, though it
	// answers ENOTCONN.
	if _, err := t.Syscall(unix.SYS_SHUTDOWN, uint64(fd), unix.SHUT_RD); err != nil && !errors.Is(err, unix.ENOTCONN) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("tcp socket:[%d]: shutdown: %w", f.Identity.Inode, err)
	}
	return fd, nil
}

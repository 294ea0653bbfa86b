package files

import (
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
	f := ckpt.File{Kind: ckpt.FileTCPClosed, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restoreTCPClosed(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil {
		return -1, fmt.Errorf("tcp socket:[%d] without socket state", f.Identity.Inode)
	}
	return newInetSocket(t, s, f.Flags)
}

package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A listening unix socket is bound again to its path or abstract name and
// listens again, with its backlog. Connections waiting in its accept queue
// whose clients the tree holds are connected again by them
// (inflightKind); for others the checkpoint lets the process accept them
// first (AcceptQueueError). The original's socket file is still on disk
// (the process was killed, not closed): it is replaced if nothing listens
// there. A name removed since is bound and removed again
// (socket_unix_name.go).
var unixListenKind = &Kind{
	Files: []string{ckpt.FileUnixListen},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Socket != nil && fd.Socket.Family == unix.AF_UNIX && fd.Socket.Listening
	},
	Dump: dumpOnce(func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		d, err := c.unixDiag(fd, fd.Link.Inode)
		if err != nil {
			return 0, fmt.Errorf("unix socket:[%d]: %w", fd.Link.Inode, err)
		}
		if d.Name == "" || d.Name == "@" {
			return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("listening unix socket:[%d] without a name", fd.Link.Inode)}
		}
		backlog := listenBacklog
		if d.WQueue > 0 {
			backlog = int(d.WQueue) // a listener's sk_max_ack_backlog
		}
		f := ckpt.File{Kind: ckpt.FileUnixListen, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode},
			Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "listen", Backlog: backlog}}
		recordUnixName(fd, d.Name, f.Socket)
		readSocketOptions(int(fd.Copy.Fd()), f.Socket)
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	}),
	Restore: restoreUnixListen,
}

func restoreUnixListen(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.Local == "" {
		return -1, errors.New("listening unix socket without its name")
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
	if err := bindUnix(c, t, fd, f.Identity.Inode, s); err != nil {
		return fail(err)
	}
	if err := setSocketOptions(t, fd, s); err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_LISTEN, uint64(fd), uint64(max(s.Backlog, 1))); err != nil {
		return fail(fmt.Errorf("listen on %s: %w", s.Local, err))
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

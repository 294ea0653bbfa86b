package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A listening unix socket is bound again to its path or abstract name and
// listens again. Connections waiting in its accept queue cannot be kept: the
// checkpoint lets the process accept them first (AcceptQueueError). The original's socket file is still on disk (the
// process was killed, not closed): it is replaced if nothing listens there.
var unixListenKind = &Kind{
	Name: "unix-listen",
	Claims: func(fd *Fd) bool {
		return fd.Socket != nil && fd.Socket.Family == unix.AF_UNIX && fd.Socket.Listening
	},
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		sa, err := unix.Getsockname(int(fd.Copy.Fd()))
		if err != nil {
			return 0, fmt.Errorf("unix socket:[%d]: getsockname: %w", fd.Link.Inode, err)
		}
		su, ok := sa.(*unix.SockaddrUnix)
		if !ok || su.Name == "" {
			return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("listening unix socket:[%d] without a name", fd.Link.Inode)}
		}
		f := ckpt.File{Kind: "unix-listen", Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode},
			Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "listen", Local: su.Name, Backlog: listenBacklog}}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	},
	Restore: restoreUnixListen,
}

// unixSockaddr encodes struct sockaddr_un for a path, or for an abstract
// name written with a leading '@' (as Go and ss print them).
func unixSockaddr(name string) ([]byte, error) {
	path := []byte(name)
	if name[0] == '@' {
		path[0] = 0
	} else {
		path = append(path, 0)
	}
	if len(path) > 108 {
		return nil, fmt.Errorf("unix socket name %q is too long", name)
	}
	b := make([]byte, 2+len(path))
	binary.LittleEndian.PutUint16(b, unix.AF_UNIX)
	copy(b[2:], path)
	// An abstract name's length says where it ends; a path's NUL is in b.
	return b, nil
}

// clearStaleSocket removes a socket file at path that nothing listens on
// any more (the checkpointed process's own, left behind when it was
// killed). Anything else at the path is left alone, and bind reports it.
func clearStaleSocket(path string, typ int) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return nil
	}
	s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	err = unix.Connect(s, &unix.SockaddrUnix{Name: path})
	if errors.Is(err, unix.ECONNREFUSED) {
		return os.Remove(path)
	}
	if err == nil {
		return fmt.Errorf("%s: another process listens there", path)
	}
	return nil
}

func restoreUnixListen(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.Local == "" {
		return -1, errors.New("listening unix socket without its name")
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
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return fail(err)
	}
	if _, err := t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw))); err != nil {
		return fail(fmt.Errorf("bind %s: %w", s.Local, err))
	}
	if _, err := t.Syscall(unix.SYS_LISTEN, uint64(fd), uint64(max(s.Backlog, 1))); err != nil {
		return fail(fmt.Errorf("listen on %s: %w", s.Local, err))
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		return fail(err)
	}
	return fd, nil
}

// An unconnected unix datagram socket bound to a name (a syslog-style
// server socket) is bound to it again; datagrams queued and not read are
// dropped, with a warning at checkpoint time.
var unixBoundKind = &Kind{
	Name:    "unix-bound",
	Claims:  func(*Fd) bool { return false }, // dumped by unixPairKind, which sees it has no peer
	Restore: restoreUnixBound,
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
		f := ckpt.File{Kind: "unix-bound", Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	}
	if err != nil || !ok || su.Name == "" || fd.Socket.Type == unix.SOCK_STREAM {
		return 0, &UnsupportedError{Fd: fd.Num, What: what + " without a peer and without a name"}
	}
	if n, err := unix.IoctlGetInt(s, unix.SIOCINQ); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued datagrams of a bound unix socket are not kept", "fd", fd.Num, "name", su.Name, "bytes", n)
	}
	f := ckpt.File{Kind: "unix-bound", Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode},
		Socket: &ckpt.Socket{Family: unix.AF_UNIX, Type: fd.Socket.Type, State: "bound", Local: su.Name}}
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
	if err == nil {
		err = setNonblock(t, fd, f.Flags)
	}
	if err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("bind %s: %w", s.Local, err)
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
	if err := setNonblock(t, fd, f.Flags); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

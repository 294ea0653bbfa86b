package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// What the socket kinds share about the network namespace a socket is in.
// sock_diag answers about the sockets of the namespace its connection was
// made in only, and an abstract unix name is found only in its own
// namespace: a checkpoint asks about each socket through a connection
// made in the socket's namespace (one per namespace, made on first use
// and kept until Close), and a restart reaches a restored socket's names
// from a socket of crsub's made beside it (sys.SocketBeside). Paths are
// the target's, as its mount namespace and root resolve them
// (RestoreContext.HostPath).

// socketNetNS returns the inode of the network namespace socket s is in.
func socketNetNS(s int) (uint64, error) {
	nsfd, err := sys.SocketNetNS(s)
	if err != nil {
		return 0, err
	}
	defer nsfd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(nsfd.Int(), &st); err != nil {
		return 0, fmt.Errorf("its network namespace: %w", err)
	}
	return st.Ino, nil
}

// diag returns the sock_diag connection of the network namespace socket
// fd is in.
func (c *DumpContext) diag(fd *Fd) (*sys.SockDiag, error) {
	var ino uint64
	if fd.Socket != nil {
		ino = fd.Socket.NetNS
	}
	if d := c.diags[ino]; d != nil && ino != 0 {
		return d, nil
	}
	nsfd, err := sys.SocketNetNS(int(fd.Copy.Fd()))
	if err != nil {
		return nil, err
	}
	defer nsfd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(nsfd.Int(), &st); err != nil {
		return nil, fmt.Errorf("its network namespace: %w", err)
	}
	if d := c.diags[st.Ino]; d != nil {
		return d, nil
	}
	d, err := sys.OpenSockDiag(nsfd.Int())
	if err != nil {
		return nil, fmt.Errorf("sock_diag in network namespace %d: %w", st.Ino, err)
	}
	if c.diags == nil {
		c.diags = map[uint64]*sys.SockDiag{}
	}
	c.diags[st.Ino] = d
	return d, nil
}

// unixDiag asks sock_diag about the unix socket ino, in the network
// namespace of the tree's fd on it, or, if the tree holds none, of near
// (a socket it is connected to, in the same namespace unless it was
// connected by path from another).
func (c *DumpContext) unixDiag(near *Fd, ino uint64) (sys.UnixDiag, error) {
	if fd := c.Sockets[ino]; fd != nil {
		near = fd
	}
	d, err := c.diag(near)
	if err != nil {
		return sys.UnixDiag{}, err
	}
	return d.Unix(ino)
}

// closeDiags closes the sock_diag connections.
func (c *DumpContext) closeDiags() {
	for ino, d := range c.diags {
		d.Close()
		delete(c.diags, ino)
	}
}

// unixName is a name of target t's unix sockets as crsub reaches it: an
// abstract name as it is (from a socket in t's network namespace), a
// path through an O_PATH fd on the socket file, as t's mount namespace,
// root and working directory resolve it (/proc/self/fd/N: short whatever
// the path's length). Close releases it.
type unixName struct {
	Addr *unix.SockaddrUnix
	file *os.File
}

// reachUnix resolves name, a name target t's sockets are bound to, for
// crsub; os.ErrNotExist if nothing is bound at that path.
func (c *RestoreContext) reachUnix(t Target, name string) (*unixName, error) {
	if name[0] == '@' {
		return &unixName{Addr: &unix.SockaddrUnix{Name: name}}, nil
	}
	path := c.hostPath(t, name)
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: path, Err: unix.ENOTSOCK}
	}
	return &unixName{Addr: &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d", fd)}, file: f}, nil
}

// Close lets go of the socket file.
func (n *unixName) Close() {
	if n.file != nil {
		n.file.Close()
	}
}

package criurpc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// maxMessage bounds a request. CRIU's requests are a few kilobytes even
// with hundreds of mounts; a SOCK_SEQPACKET message longer than the buffer
// is cut (MSG_TRUNC), and refused rather than half-read.
const maxMessage = 1 << 20

// conn is the runtime's end of a swrk socket: one message per request or
// response.
type conn struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

// newConn takes over f, a connected SOCK_SEQPACKET socket.
func newConn(f *os.File) (*conn, error) {
	fc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("fd %d is not the runtime's socket: %w", f.Fd(), err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("fd %d is not a unix socket", f.Fd())
	}
	return &conn{c: uc, buf: make([]byte, maxMessage), oob: make([]byte, unix.CmsgSpace(4*16))}, nil
}

func (c *conn) Close() error { return c.c.Close() }

// peerPid is the pid of the process that made the socket pair: the fds a
// request names (images_dir_fd, work_dir_fd) are that process's.
func (c *conn) peerPid() (int, error) {
	raw, err := c.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, os.NewSyscallError("getsockopt(SO_PEERCRED)", serr)
	}
	return int(cred.Pid), nil
}

// inode is the inode of crsub's end of the socket: what the other end's
// peer is, in the tree of a runtime that checkpoints itself.
func (c *conn) inode() (uint64, error) {
	raw, err := c.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, os.NewSyscallError("fstat", serr)
	}
	return st.Ino, nil
}

// errMalformed wraps what makes a message unreadable.
var errMalformed = errors.New("malformed request")

// recv reads one request; io.EOF when the runtime closed its end. Fds
// passed with it are closed: no request carries one.
func (c *conn) recv() (*rpcpb.CriuReq, error) {
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.buf, c.oob)
	if err != nil {
		return nil, fmt.Errorf("reading a request: %w", err)
	}
	closeRights(c.oob[:oobn])
	if n == 0 {
		return nil, io.EOF
	}
	if flags&unix.MSG_TRUNC != 0 {
		return nil, fmt.Errorf("%w: longer than %d bytes", errMalformed, len(c.buf))
	}
	return decodeRequest(c.buf[:n])
}

// decodeRequest unpacks a criu_req; missing required fields (its type, an
// options message without images_dir_fd) make it malformed, as for CRIU.
func decodeRequest(b []byte) (*rpcpb.CriuReq, error) {
	req := &rpcpb.CriuReq{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return req, nil
}

// send writes one response, with fd passed along if it is not negative.
func (c *conn) send(resp *rpcpb.CriuResp, fd int) error {
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("sending the %s response: %w", resp.GetType(), err)
	}
	return nil
}

func closeRights(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

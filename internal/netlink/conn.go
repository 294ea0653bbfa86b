package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/netlink/nlwire"
	"github.com/crsub/crsub/internal/sys"
)

// Message is one netlink message: its header fields and its body.
type Message = nlwire.Message

// Error is the kernel's refusal of a request.
type Error struct {
	// Request names what was asked ("RTM_NEWLINK").
	Request string
	Errno   unix.Errno
	// Message is the kernel's extended acknowledgement, when it gave one
	// ("Invalid prefix for given prefix length").
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: %v (%s)", e.Request, e.Errno, e.Message)
	}
	return fmt.Sprintf("%s: %v", e.Request, e.Errno)
}

func (e *Error) Unwrap() error { return e.Errno }

// Conn is a route netlink socket. It is bound to the network namespace of
// the thread that dialed it, for its whole life. A Conn is not safe for
// concurrent use.
type Conn struct {
	fd   *sys.FD
	seq  uint32
	port uint32
	buf  []byte
}

// Dial opens a route netlink socket in the calling thread's network
// namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket(NETLINK_ROUTE)", err)
	}
	c := &Conn{fd: sys.NewFD(fd), buf: make([]byte, 32<<10)}
	// Errors come back with the kernel's reason and without a copy of the
	// request; dumps of every namespace's ids are not wanted.
	for _, opt := range []int{unix.NETLINK_EXT_ACK, unix.NETLINK_CAP_ACK, unix.NETLINK_GET_STRICT_CHK} {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, opt, 1); err != nil {
			c.Close()
			return nil, os.NewSyscallError("setsockopt(SOL_NETLINK)", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.Close()
		return nil, os.NewSyscallError("bind(NETLINK_ROUTE)", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		c.Close()
		return nil, os.NewSyscallError("getsockname(NETLINK_ROUTE)", err)
	}
	c.port = sa.(*unix.SockaddrNetlink).Pid
	return c, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.fd.Close() }

// Do sends a request and waits for the kernel's acknowledgement.
func (c *Conn) Do(typ uint16, flags uint16, body []byte) error {
	_, err := c.exchange(typ, flags|unix.NLM_F_ACK, body)
	return err
}

// Query sends a request that the kernel answers with messages (a GET of
// one object), and returns them.
func (c *Conn) Query(typ uint16, body []byte) ([]Message, error) {
	return c.exchange(typ, 0, body)
}

// Dump asks for every object of a kind and returns the messages. A dump the
// kernel marks inconsistent (the table changed under it) is asked again.
func (c *Conn) Dump(typ uint16, body []byte) ([]Message, error) {
	for try := 0; ; try++ {
		msgs, err := c.exchange(typ, unix.NLM_F_DUMP, body)
		if !errors.Is(err, errDumpInterrupted) || try == 10 {
			return msgs, err
		}
	}
}

var errDumpInterrupted = errors.New("dump interrupted")

func (c *Conn) exchange(typ uint16, flags uint16, body []byte) ([]Message, error) {
	c.seq++
	seq := c.seq
	req := nlwire.AppendMessage(nil, Message{Type: typ, Flags: flags | unix.NLM_F_REQUEST, Seq: seq, Data: body}, c.port)
	name := messageName(typ)
	if err := fault.Call("netlink " + name); err != nil {
		return nil, os.NewSyscallError("sendto("+name+")", err)
	}
	if err := retry(func() error { return unix.Sendto(c.fd.Int(), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) }); err != nil {
		return nil, os.NewSyscallError("sendto("+name+")", err)
	}
	var out []Message
	interrupted := false
	for {
		b, err := c.receive()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		msgs, err := ParseMessages(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, m := range msgs {
			if m.Seq != seq {
				continue // an answer to an earlier, abandoned request
			}
			if m.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return nil, errDumpInterrupted
				}
				return out, doneError(name, m.Data)
			case unix.NLMSG_ERROR:
				return out, ackError(name, m)
			case unix.NLMSG_NOOP, unix.NLMSG_OVERRUN:
				continue
			}
			out = append(out, m)
			if m.Flags&unix.NLM_F_MULTI == 0 && flags&(unix.NLM_F_DUMP|unix.NLM_F_ACK) == 0 {
				return out, nil
			}
		}
	}
}

// receive reads one datagram, growing the buffer for one that does not fit.
// What it returns is the caller's: the buffer is used again.
func (c *Conn) receive() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd.Int(), c.buf, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		if n > len(c.buf) {
			c.buf = make([]byte, n)
		}
		n, _, err = unix.Recvfrom(c.fd.Int(), c.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		return append([]byte(nil), c.buf[:n]...), nil
	}
}

func retry(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// ParseMessages splits a datagram into messages. Bodies alias b.
func ParseMessages(b []byte) ([]Message, error) {
	var msgs []Message
	for m, err := range nlwire.Messages(b) {
		if err != nil {
			return nil, fmt.Errorf("netlink %w", err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// ackError reads an NLMSG_ERROR message: nil for an acknowledgement.
func ackError(name string, m Message) error {
	if len(m.Data) < 4 {
		return fmt.Errorf("%s: short error message", name)
	}
	code := int32(binary.NativeEndian.Uint32(m.Data))
	if code == 0 {
		return nil
	}
	e := &Error{Request: name, Errno: unix.Errno(-code)}
	// With NETLINK_CAP_ACK the request's header follows without its body,
	// then the extended acknowledgement's attributes.
	if m.Flags&unix.NLM_F_ACK_TLVS != 0 {
		off := 4 + nlwire.HeaderLen
		if m.Flags&unix.NLM_F_CAPPED == 0 && len(m.Data) >= off {
			off = 4 + int(binary.NativeEndian.Uint32(m.Data[4:])) // the whole request echoed
		}
		if off = nlwire.Align(off); off <= len(m.Data) {
			if attrs, err := ParseAttrs(m.Data[off:]); err == nil {
				for _, a := range attrs {
					if a.Type == unix.NLMSGERR_ATTR_MSG {
						e.Message = a.String()
					}
				}
			}
		}
	}
	return e
}

// doneError reads the error a dump may end with (in NLMSG_DONE's body).
func doneError(name string, b []byte) error {
	if len(b) < 4 {
		return nil
	}
	if code := int32(binary.NativeEndian.Uint32(b)); code < 0 {
		return &Error{Request: name, Errno: unix.Errno(-code)}
	}
	return nil
}

func messageName(typ uint16) string {
	if n, ok := messageNames[typ]; ok {
		return n
	}
	return fmt.Sprintf("netlink message %d", typ)
}

var messageNames = map[uint16]string{
	unix.RTM_NEWLINK:  "RTM_NEWLINK",
	unix.RTM_DELLINK:  "RTM_DELLINK",
	unix.RTM_GETLINK:  "RTM_GETLINK",
	unix.RTM_SETLINK:  "RTM_SETLINK",
	unix.RTM_NEWADDR:  "RTM_NEWADDR",
	unix.RTM_DELADDR:  "RTM_DELADDR",
	unix.RTM_GETADDR:  "RTM_GETADDR",
	unix.RTM_NEWROUTE: "RTM_NEWROUTE",
	unix.RTM_DELROUTE: "RTM_DELROUTE",
	unix.RTM_GETROUTE: "RTM_GETROUTE",
	unix.RTM_GETNSID:  "RTM_GETNSID",
}

// Package nlwire walks netlink's wire format: the messages of a datagram
// (struct nlmsghdr and its body) and the attributes of a body (struct
// nlattr and its value), each checked against what holds it and aligned
// as the kernel aligns them. It knows no protocol: route netlink
// (internal/netlink) and sock_diag (internal/sys) read their own messages
// with it, so it imports nothing of the engine's.
package nlwire

import (
	"encoding/binary"
	"fmt"
	"iter"

	"golang.org/x/sys/unix"
)

// HeaderLen is the size of struct nlmsghdr; AttrHeaderLen of struct nlattr.
const (
	HeaderLen     = unix.SizeofNlMsghdr
	AttrHeaderLen = 4
)

// Attribute type flags: nested, and network byte order. Attrs clears them
// from Attr.Type.
const (
	Nested       = 0x8000
	NetByteorder = 0x4000
	typeMask     = ^uint16(Nested | NetByteorder)
)

// Align rounds n up to the netlink alignment.
func Align(n int) int { return (n + 3) &^ 3 }

// Message is one netlink message: its header fields and its body.
type Message struct {
	Type  uint16
	Flags uint16
	Seq   uint32
	Data  []byte
}

// Attr is one netlink attribute, its type without the flags.
type Attr struct {
	Type  uint16
	Value []byte
}

// Messages yields the messages of datagram b, bodies aliasing b. One whose
// length does not fit ends the walk with an error.
func Messages(b []byte) iter.Seq2[Message, error] {
	return walk(b, HeaderLen, "message", func(b []byte) int { return int(binary.NativeEndian.Uint32(b)) },
		func(b []byte, n int) Message {
			return Message{
				Type:  binary.NativeEndian.Uint16(b[4:]),
				Flags: binary.NativeEndian.Uint16(b[6:]),
				Seq:   binary.NativeEndian.Uint32(b[8:]),
				Data:  b[HeaderLen:n:n],
			}
		})
}

// Attrs yields the attributes in b, values aliasing b. One whose length
// does not fit ends the walk with an error.
func Attrs(b []byte) iter.Seq2[Attr, error] {
	return walk(b, AttrHeaderLen, "attribute", func(b []byte) int { return int(binary.NativeEndian.Uint16(b)) },
		func(b []byte, n int) Attr {
			return Attr{Type: binary.NativeEndian.Uint16(b[2:]) & typeMask, Value: b[AttrHeaderLen:n:n]}
		})
}

// walk yields what read makes of each length-prefixed, aligned item of b
// (named what in errors), whose header of headerLen bytes says its length.
func walk[T any](b []byte, headerLen int, what string, length func([]byte) int, read func(b []byte, n int) T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var none T
		for len(b) > 0 {
			if len(b) < headerLen {
				yield(none, fmt.Errorf("%s header of %d bytes", what, len(b)))
				return
			}
			n := length(b)
			if n < headerLen || n > len(b) {
				yield(none, fmt.Errorf("%s of %d bytes in %d", what, n, len(b)))
				return
			}
			item := read(b, n)
			b = b[min(Align(n), len(b)):]
			if !yield(item, nil) {
				return
			}
		}
	}
}

// AppendAttr appends an attribute of type typ (flags included) and value v
// to b, padded to alignment.
func AppendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(AttrHeaderLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	return Pad(b)
}

// Pad appends zeros to b up to the netlink alignment.
func Pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// AppendMessage appends message m, from port, to b.
func AppendMessage(b []byte, m Message, port uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(HeaderLen+len(m.Data)))
	b = binary.NativeEndian.AppendUint16(b, m.Type)
	b = binary.NativeEndian.AppendUint16(b, m.Flags)
	b = binary.NativeEndian.AppendUint32(b, m.Seq)
	b = binary.NativeEndian.AppendUint32(b, port)
	b = append(b, m.Data...)
	return Pad(b)
}

package netlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/crsub/crsub/internal/netlink/nlwire"
)

// Attr is one netlink attribute (struct nlattr and its value), its type
// without the flags.
type Attr nlwire.Attr

// ParseAttrs splits b into attributes. Values alias b.
func ParseAttrs(b []byte) ([]Attr, error) {
	var attrs []Attr
	for a, err := range nlwire.Attrs(b) {
		if err != nil {
			return nil, fmt.Errorf("netlink %w", err)
		}
		attrs = append(attrs, Attr(a))
	}
	return attrs, nil
}

// Uint8, Uint16, Uint32 and Int32 read a fixed-size value; a value of
// another size is an error.
func (a Attr) Uint8() (uint8, error) {
	if len(a.Value) != 1 {
		return 0, a.sizeError(1)
	}
	return a.Value[0], nil
}

func (a Attr) Uint16() (uint16, error) {
	if len(a.Value) != 2 {
		return 0, a.sizeError(2)
	}
	return binary.NativeEndian.Uint16(a.Value), nil
}

func (a Attr) Uint32() (uint32, error) {
	if len(a.Value) != 4 {
		return 0, a.sizeError(4)
	}
	return binary.NativeEndian.Uint32(a.Value), nil
}

func (a Attr) Int32() (int32, error) {
	v, err := a.Uint32()
	return int32(v), err
}

// String reads a NUL-terminated string (the NUL is optional).
func (a Attr) String() string {
	v := a.Value
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	return string(v)
}

// Addr reads an IPv4 or IPv6 address.
func (a Attr) Addr() (netip.Addr, error) {
	addr, ok := netip.AddrFromSlice(a.Value)
	if !ok {
		return netip.Addr{}, fmt.Errorf("netlink attribute %d: address of %d bytes", a.Type, len(a.Value))
	}
	return addr, nil
}

// Nested parses the value as attributes.
func (a Attr) Nested() ([]Attr, error) { return ParseAttrs(a.Value) }

func (a Attr) sizeError(want int) error {
	return fmt.Errorf("netlink attribute %d: %d bytes, want %d", a.Type, len(a.Value), want)
}

// Encoder builds a message body: a fixed header then attributes.
type Encoder struct {
	b []byte
}

// Bytes returns what was built.
func (e *Encoder) Bytes() []byte { return e.b }

// Raw appends b as it is (a fixed header), padded to alignment.
func (e *Encoder) Raw(b []byte) { e.b = nlwire.Pad(append(e.b, b...)) }

// Attr appends an attribute with value v.
func (e *Encoder) Attr(typ uint16, v []byte) { e.b = nlwire.AppendAttr(e.b, typ, v) }

func (e *Encoder) Uint8(typ uint16, v uint8) { e.Attr(typ, []byte{v}) }

func (e *Encoder) Uint16(typ uint16, v uint16) {
	e.Attr(typ, binary.NativeEndian.AppendUint16(nil, v))
}

func (e *Encoder) Uint32(typ uint16, v uint32) {
	e.Attr(typ, binary.NativeEndian.AppendUint32(nil, v))
}

func (e *Encoder) Int32(typ uint16, v int32) { e.Uint32(typ, uint32(v)) }

// String appends s with its terminating NUL.
func (e *Encoder) String(typ uint16, s string) { e.Attr(typ, append([]byte(s), 0)) }

// Addr appends an address: 4 bytes for IPv4, 16 for IPv6.
func (e *Encoder) Addr(typ uint16, a netip.Addr) { e.Attr(typ, a.AsSlice()) }

// Nested appends an attribute whose value is what build appends.
func (e *Encoder) Nested(typ uint16, build func(*Encoder)) {
	start := len(e.b)
	e.Attr(typ|nlwire.Nested, nil)
	build(e)
	binary.NativeEndian.PutUint16(e.b[start:], uint16(len(e.b)-start))
}

package netlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Address is an interface address as RTM_NEWADDR describes it.
type Address struct {
	Family    uint8 // AF_INET, AF_INET6
	PrefixLen uint8
	// Flags are the IFA_F_* flags (IFA_FLAGS, which holds them all).
	Flags uint32
	Scope uint8 // RT_SCOPE_*
	Index int32
	// Local is the address itself (IFA_LOCAL, or IFA_ADDRESS where
	// there is no IFA_LOCAL); Peer the other end of a point-to-point
	// link, if it differs.
	Local     netip.Addr
	Peer      netip.Addr
	Broadcast netip.Addr
	Label     string
	// ValidLifetime and PreferredLifetime are in seconds; 0xffffffff is
	// forever.
	ValidLifetime, PreferredLifetime uint32
}

// Prefix is the address with its prefix length.
func (a Address) Prefix() netip.Prefix { return netip.PrefixFrom(a.Local, int(a.PrefixLen)) }

// ParseAddress reads an RTM_NEWADDR body.
func ParseAddress(b []byte) (Address, error) {
	if len(b) < unix.SizeofIfAddrmsg {
		return Address{}, fmt.Errorf("ifaddrmsg of %d bytes", len(b))
	}
	a := Address{
		Family:    b[0],
		PrefixLen: b[1],
		Flags:     uint32(b[2]),
		Scope:     b[3],
		Index:     int32(binary.NativeEndian.Uint32(b[4:])),
	}
	attrs, err := ParseAttrs(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return Address{}, fmt.Errorf("address on link %d: %w", a.Index, err)
	}
	var address netip.Addr
	for _, at := range attrs {
		switch at.Type {
		case unix.IFA_ADDRESS:
			address, err = at.Addr()
		case unix.IFA_LOCAL:
			a.Local, err = at.Addr()
		case unix.IFA_BROADCAST:
			a.Broadcast, err = at.Addr()
		case unix.IFA_LABEL:
			a.Label = at.String()
		case unix.IFA_FLAGS:
			a.Flags, err = at.Uint32()
		case unix.IFA_CACHEINFO:
			if len(at.Value) < 8 {
				err = at.sizeError(16)
			} else {
				a.PreferredLifetime = binary.NativeEndian.Uint32(at.Value)
				a.ValidLifetime = binary.NativeEndian.Uint32(at.Value[4:])
			}
		}
		if err != nil {
			return Address{}, fmt.Errorf("address on link %d: %w", a.Index, err)
		}
	}
	// IFA_ADDRESS is the peer's address on a point-to-point link, the
	// address itself elsewhere.
	if !a.Local.IsValid() {
		a.Local = address
	} else if address != a.Local {
		a.Peer = address
	}
	if !a.Local.IsValid() {
		return Address{}, fmt.Errorf("address on link %d without an address", a.Index)
	}
	return a, nil
}

func (a *Address) encode(e *Encoder) {
	hdr := make([]byte, unix.SizeofIfAddrmsg)
	hdr[0], hdr[1], hdr[2], hdr[3] = a.Family, a.PrefixLen, uint8(a.Flags), a.Scope
	binary.NativeEndian.PutUint32(hdr[4:], uint32(a.Index))
	e.Raw(hdr)
	e.Addr(unix.IFA_LOCAL, a.Local)
	if a.Peer.IsValid() {
		e.Addr(unix.IFA_ADDRESS, a.Peer)
	} else {
		e.Addr(unix.IFA_ADDRESS, a.Local)
	}
	if a.Broadcast.IsValid() {
		e.Addr(unix.IFA_BROADCAST, a.Broadcast)
	}
	if a.Label != "" {
		e.String(unix.IFA_LABEL, a.Label)
	}
	e.Uint32(unix.IFA_FLAGS, a.Flags)
	if a.ValidLifetime != 0 || a.PreferredLifetime != 0 {
		ci := make([]byte, 16)
		binary.NativeEndian.PutUint32(ci, a.PreferredLifetime)
		binary.NativeEndian.PutUint32(ci[4:], a.ValidLifetime)
		e.Attr(unix.IFA_CACHEINFO, ci)
	}
}

// Addresses lists the namespace's addresses of one family (AF_UNSPEC:
// all).
func (c *Conn) Addresses(family uint8) ([]Address, error) {
	req := make([]byte, unix.SizeofIfAddrmsg)
	req[0] = family
	msgs, err := c.Dump(unix.RTM_GETADDR, req)
	if err != nil {
		return nil, err
	}
	addrs := make([]Address, 0, len(msgs))
	for _, m := range msgs {
		if m.Type != unix.RTM_NEWADDR {
			continue
		}
		a, err := ParseAddress(m.Data)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// AddAddress adds an address, or changes it if the link has it already.
func (c *Conn) AddAddress(a *Address) error {
	var e Encoder
	a.encode(&e)
	return c.Do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, e.Bytes())
}

// DeleteAddress removes an address.
func (c *Conn) DeleteAddress(a *Address) error {
	var e Encoder
	a.encode(&e)
	return c.Do(unix.RTM_DELADDR, 0, e.Bytes())
}

package netlink

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

const vethInfoPeer = 1 // VETH_INFO_PEER in IFLA_INFO_DATA of a veth

// Link is a network interface as RTM_NEWLINK describes it.
type Link struct {
	Index int32
	// Type is the hardware type (ARPHRD_ETHER, ARPHRD_LOOPBACK…).
	Type uint16
	// Flags are the IFF_* flags (IFF_UP, IFF_NOARP…).
	Flags  uint32
	Name   string
	MTU    uint32
	TxQLen uint32
	// Address is the hardware address; Broadcast its broadcast address.
	Address   []byte
	Broadcast []byte
	// Kind is the driver's link kind ("veth", "dummy", "bridge"); empty
	// for loopback and physical devices.
	Kind string
	// Master is the index of the bridge or bond the link is enslaved to.
	Master int32
	// Parent is IFLA_LINK: for a veth, its peer's index, in the peer's
	// namespace.
	Parent int32
	// ParentNSID is IFLA_LINK_NETNSID: the id, in this namespace, of the
	// namespace Parent is in; -1 when it is this namespace.
	ParentNSID int32
	// OperState is IF_OPER_* (IF_OPER_UP 6, IF_OPER_DOWN 2…).
	OperState uint8
	// Tun is a tun or tap device's IFLA_INFO_DATA.
	Tun *TunInfo
}

// TunInfo is a tun device's settings (IFLA_TUN_*).
type TunInfo struct {
	Owner, Group uint32 // 0xffffffff: none
	// Type is IFF_TUN or IFF_TAP.
	Type                     uint8
	PI, VnetHdr, Persist, MQ bool
	Queues, DisabledQueues   uint32
}

func parseTunInfo(attrs []Attr) (*TunInfo, error) {
	t := &TunInfo{}
	for _, a := range attrs {
		var err error
		var b uint8
		switch a.Type {
		case unix.IFLA_TUN_OWNER:
			t.Owner, err = a.Uint32()
		case unix.IFLA_TUN_GROUP:
			t.Group, err = a.Uint32()
		case unix.IFLA_TUN_TYPE:
			t.Type, err = a.Uint8()
		case unix.IFLA_TUN_PI:
			b, err = a.Uint8()
			t.PI = b != 0
		case unix.IFLA_TUN_VNET_HDR:
			b, err = a.Uint8()
			t.VnetHdr = b != 0
		case unix.IFLA_TUN_PERSIST:
			b, err = a.Uint8()
			t.Persist = b != 0
		case unix.IFLA_TUN_MULTI_QUEUE:
			b, err = a.Uint8()
			t.MQ = b != 0
		case unix.IFLA_TUN_NUM_QUEUES:
			t.Queues, err = a.Uint32()
		case unix.IFLA_TUN_NUM_DISABLED_QUEUES:
			t.DisabledQueues, err = a.Uint32()
		}
		if err != nil {
			return nil, fmt.Errorf("tun attribute %d: %w", a.Type, err)
		}
	}
	return t, nil
}

// ParseLink reads an RTM_NEWLINK body.
func ParseLink(b []byte) (Link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, fmt.Errorf("ifinfomsg of %d bytes", len(b))
	}
	l := Link{
		Type:       binary.NativeEndian.Uint16(b[2:]),
		Index:      int32(binary.NativeEndian.Uint32(b[4:])),
		Flags:      binary.NativeEndian.Uint32(b[8:]),
		ParentNSID: -1,
	}
	attrs, err := ParseAttrs(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return Link{}, fmt.Errorf("link %d: %w", l.Index, err)
	}
	for _, a := range attrs {
		switch a.Type {
		case unix.IFLA_IFNAME:
			l.Name = a.String()
		case unix.IFLA_MTU:
			l.MTU, err = a.Uint32()
		case unix.IFLA_TXQLEN:
			l.TxQLen, err = a.Uint32()
		case unix.IFLA_ADDRESS:
			l.Address = append([]byte(nil), a.Value...)
		case unix.IFLA_BROADCAST:
			l.Broadcast = append([]byte(nil), a.Value...)
		case unix.IFLA_MASTER:
			l.Master, err = a.Int32()
		case unix.IFLA_LINK:
			l.Parent, err = a.Int32()
		case unix.IFLA_LINK_NETNSID:
			l.ParentNSID, err = a.Int32()
		case unix.IFLA_OPERSTATE:
			l.OperState, err = a.Uint8()
		case unix.IFLA_LINKINFO:
			var info []Attr
			if info, err = a.Nested(); err == nil {
				var data []Attr
				for _, i := range info {
					switch i.Type {
					case unix.IFLA_INFO_KIND:
						l.Kind = i.String()
					case unix.IFLA_INFO_DATA:
						data, err = i.Nested()
					}
				}
				if err == nil && l.Kind == "tun" && data != nil {
					l.Tun, err = parseTunInfo(data)
				}
			}
		}
		if err != nil {
			return Link{}, fmt.Errorf("link %d (%s): %w", l.Index, l.Name, err)
		}
	}
	return l, nil
}

// LinkRequest creates or changes a link. Zero fields are left as they are
// (or as the kernel makes them).
type LinkRequest struct {
	// Index names the link to change; for a new link, the index it is to
	// have (0: the kernel chooses).
	Index int32
	// Flags sets the IFF_* flags selected by Change.
	Flags, Change uint32
	Name          string
	MTU           uint32
	TxQLen        *uint32
	Address       []byte
	// Kind is the kind of link to create ("veth", "dummy", "bridge").
	Kind string
	// Master enslaves the link to this one (0: frees it from its master).
	Master *int32
	// NetNSFD moves the link into the network namespace of this fd (for a
	// new link: creates it there).
	NetNSFD *int
	// NewIndex is the index a link moved by NetNSFD takes there.
	NewIndex int32
	// Peer is a new veth's other end.
	Peer *LinkRequest
}

func (r *LinkRequest) encode(e *Encoder) {
	hdr := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(hdr[4:], uint32(r.Index))
	binary.NativeEndian.PutUint32(hdr[8:], r.Flags)
	binary.NativeEndian.PutUint32(hdr[12:], r.Change)
	e.Raw(hdr)
	if r.Name != "" {
		e.String(unix.IFLA_IFNAME, r.Name)
	}
	if r.MTU != 0 {
		e.Uint32(unix.IFLA_MTU, r.MTU)
	}
	if r.TxQLen != nil {
		e.Uint32(unix.IFLA_TXQLEN, *r.TxQLen)
	}
	if len(r.Address) > 0 {
		e.Attr(unix.IFLA_ADDRESS, r.Address)
	}
	if r.Master != nil {
		e.Int32(unix.IFLA_MASTER, *r.Master)
	}
	if r.NetNSFD != nil {
		e.Uint32(unix.IFLA_NET_NS_FD, uint32(*r.NetNSFD))
	}
	if r.NewIndex != 0 {
		e.Int32(unix.IFLA_NEW_IFINDEX, r.NewIndex)
	}
	if r.Kind != "" {
		e.Nested(unix.IFLA_LINKINFO, func(e *Encoder) {
			e.String(unix.IFLA_INFO_KIND, r.Kind)
			if r.Peer != nil {
				e.Nested(unix.IFLA_INFO_DATA, func(e *Encoder) {
					e.Nested(vethInfoPeer, r.Peer.encode)
				})
			}
		})
	}
}

// Links lists the namespace's links.
func (c *Conn) Links() ([]Link, error) {
	msgs, err := c.Dump(unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg))
	if err != nil {
		return nil, err
	}
	links := make([]Link, 0, len(msgs))
	for _, m := range msgs {
		if m.Type != unix.RTM_NEWLINK {
			continue
		}
		l, err := ParseLink(m.Data)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// LinkByName returns the link with that name; an error wrapping ENODEV if
// there is none.
func (c *Conn) LinkByName(name string) (Link, error) {
	var e Encoder
	e.Raw(make([]byte, unix.SizeofIfInfomsg))
	e.String(unix.IFLA_IFNAME, name)
	return c.queryLink(e.Bytes())
}

// LinkByIndex returns the link with that index; an error wrapping ENODEV if
// there is none.
func (c *Conn) LinkByIndex(index int32) (Link, error) {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	return c.queryLink(b)
}

func (c *Conn) queryLink(req []byte) (Link, error) {
	msgs, err := c.Query(unix.RTM_GETLINK, req)
	if err != nil {
		return Link{}, err
	}
	for _, m := range msgs {
		if m.Type == unix.RTM_NEWLINK {
			return ParseLink(m.Data)
		}
	}
	return Link{}, fmt.Errorf("RTM_GETLINK: no link in the answer")
}

// NewLink creates a link; an existing one of that name is an error
// (EEXIST).
func (c *Conn) NewLink(r *LinkRequest) error {
	var e Encoder
	r.encode(&e)
	return c.Do(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, e.Bytes())
}

// SetLink changes the link r.Index.
func (c *Conn) SetLink(r *LinkRequest) error {
	var e Encoder
	r.encode(&e)
	return c.Do(unix.RTM_NEWLINK, 0, e.Bytes())
}

// DeleteLink removes a link (both ends, for a veth).
func (c *Conn) DeleteLink(index int32) error {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	return c.Do(unix.RTM_DELLINK, 0, b)
}

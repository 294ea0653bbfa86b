package netlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/crsub/crsub/internal/netlink/nlwire"
	"golang.org/x/sys/unix"
)

// Route is a routing table entry as RTM_NEWROUTE describes it.
type Route struct {
	Family   uint8
	DstLen   uint8
	SrcLen   uint8
	TOS      uint8
	Table    uint32 // RT_TABLE_MAIN 254, RT_TABLE_LOCAL 255…
	Protocol uint8  // RTPROT_KERNEL, RTPROT_BOOT, RTPROT_STATIC…
	Scope    uint8  // RT_SCOPE_UNIVERSE, RT_SCOPE_LINK…
	Type     uint8  // RTN_UNICAST, RTN_LOCAL, RTN_BLACKHOLE…
	Flags    uint32 // RTM_F_*, RTNH_F_ONLINK…
	Dst      netip.Addr
	Src      netip.Addr
	Gateway  netip.Addr
	PrefSrc  netip.Addr
	// OutIndex is the output link's index (RTA_OIF).
	OutIndex int32
	Priority uint32 // the metric
	// Metrics is RTA_METRICS as the kernel gave it (nested RTAX_*
	// attributes: mtu, window…), kept whole to give back.
	Metrics []byte
	// Pref is the IPv6 router preference (RTA_PREF).
	Pref *uint8
	// Multipath says the route has several next hops (RTA_MULTIPATH),
	// which Route does not describe.
	Multipath bool
}

// Destination is the route's destination prefix.
func (r Route) Destination() netip.Prefix {
	dst := r.Dst
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
		if r.Family == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		}
	}
	return netip.PrefixFrom(dst, int(r.DstLen))
}

// ParseRoute reads an RTM_NEWROUTE body.
func ParseRoute(b []byte) (Route, error) {
	if len(b) < unix.SizeofRtMsg {
		return Route{}, fmt.Errorf("rtmsg of %d bytes", len(b))
	}
	r := Route{
		Family: b[0], DstLen: b[1], SrcLen: b[2], TOS: b[3],
		Table: uint32(b[4]), Protocol: b[5], Scope: b[6], Type: b[7],
		Flags: binary.NativeEndian.Uint32(b[8:]),
	}
	attrs, err := ParseAttrs(b[unix.SizeofRtMsg:])
	if err != nil {
		return Route{}, fmt.Errorf("route: %w", err)
	}
	for _, a := range attrs {
		switch a.Type {
		case unix.RTA_DST:
			r.Dst, err = a.Addr()
		case unix.RTA_SRC:
			r.Src, err = a.Addr()
		case unix.RTA_GATEWAY:
			r.Gateway, err = a.Addr()
		case unix.RTA_PREFSRC:
			r.PrefSrc, err = a.Addr()
		case unix.RTA_OIF:
			r.OutIndex, err = a.Int32()
		case unix.RTA_PRIORITY:
			r.Priority, err = a.Uint32()
		case unix.RTA_TABLE:
			r.Table, err = a.Uint32()
		case unix.RTA_METRICS:
			r.Metrics = append([]byte(nil), a.Value...)
		case unix.RTA_PREF:
			var p uint8
			p, err = a.Uint8()
			r.Pref = &p
		case unix.RTA_MULTIPATH:
			r.Multipath = true
		}
		if err != nil {
			return Route{}, fmt.Errorf("route: %w", err)
		}
	}
	return r, nil
}

func (r *Route) encode(e *Encoder) {
	hdr := make([]byte, unix.SizeofRtMsg)
	hdr[0], hdr[1], hdr[2], hdr[3] = r.Family, r.DstLen, r.SrcLen, r.TOS
	hdr[4] = unix.RT_TABLE_UNSPEC
	if r.Table < 256 {
		hdr[4] = uint8(r.Table)
	}
	hdr[5], hdr[6], hdr[7] = r.Protocol, r.Scope, r.Type
	binary.NativeEndian.PutUint32(hdr[8:], r.Flags)
	e.Raw(hdr)
	e.Uint32(unix.RTA_TABLE, r.Table)
	if r.Dst.IsValid() {
		e.Addr(unix.RTA_DST, r.Dst)
	}
	if r.Src.IsValid() {
		e.Addr(unix.RTA_SRC, r.Src)
	}
	if r.Gateway.IsValid() {
		e.Addr(unix.RTA_GATEWAY, r.Gateway)
	}
	if r.PrefSrc.IsValid() {
		e.Addr(unix.RTA_PREFSRC, r.PrefSrc)
	}
	if r.OutIndex != 0 {
		e.Int32(unix.RTA_OIF, r.OutIndex)
	}
	if r.Priority != 0 {
		e.Uint32(unix.RTA_PRIORITY, r.Priority)
	}
	if len(r.Metrics) > 0 {
		e.Attr(unix.RTA_METRICS|nlwire.Nested, r.Metrics)
	}
	if r.Pref != nil {
		e.Uint8(unix.RTA_PREF, *r.Pref)
	}
}

// Routes lists the routes of one family (AF_UNSPEC: all) in every table.
func (c *Conn) Routes(family uint8) ([]Route, error) {
	req := make([]byte, unix.SizeofRtMsg)
	req[0] = family
	msgs, err := c.Dump(unix.RTM_GETROUTE, req)
	if err != nil {
		return nil, err
	}
	routes := make([]Route, 0, len(msgs))
	for _, m := range msgs {
		if m.Type != unix.RTM_NEWROUTE {
			continue
		}
		r, err := ParseRoute(m.Data)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// AddRoute adds a route; the same route already there is an error
// (EEXIST).
func (c *Conn) AddRoute(r *Route) error {
	var e Encoder
	r.encode(&e)
	return c.Do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, e.Bytes())
}

// DeleteRoute removes a route.
func (c *Conn) DeleteRoute(r *Route) error {
	var e Encoder
	r.encode(&e)
	return c.Do(unix.RTM_DELROUTE, 0, e.Bytes())
}

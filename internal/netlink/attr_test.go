package netlink

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// ParseAttrs is nlwire's walk (tested there) with netlink's wording.
func TestParseAttrs(t *testing.T) {
	got, err := ParseAttrs([]byte{7, 0, 3, 0x80, 'l', 'o', 0, 0})
	if diff := cmp.Diff([]Attr{{Type: 3, Value: []byte("lo\x00")}}, got); err != nil || diff != "" {
		t.Errorf("ParseAttrs = %v (-want +got):\n%s", err, diff)
	}
	_, err = ParseAttrs([]byte{12, 0, 1, 0, 0, 0, 0, 0})
	if want := "netlink attribute of 12 bytes in 8"; err == nil || err.Error() != want {
		t.Errorf("ParseAttrs of a long attribute: %v, want %q", err, want)
	}
	_, err = ParseMessages([]byte{1, 2, 3})
	if want := "netlink message header of 3 bytes"; err == nil || err.Error() != want {
		t.Errorf("ParseMessages of 3 bytes: %v, want %q", err, want)
	}
}

func TestEncoderNested(t *testing.T) {
	var e Encoder
	e.Raw([]byte{1, 2})
	e.String(unix.IFLA_IFNAME, "eth0")
	e.Nested(unix.IFLA_LINKINFO, func(e *Encoder) {
		e.String(unix.IFLA_INFO_KIND, "veth")
		e.Uint8(9, 7)
	})
	e.Uint32(unix.IFLA_MTU, 1400)
	b := e.Bytes()
	if len(b)%4 != 0 {
		t.Fatalf("%d bytes: not aligned", len(b))
	}
	attrs, err := ParseAttrs(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	if len(attrs) != 3 {
		t.Fatalf("%d attributes, want 3", len(attrs))
	}
	inner, err := attrs[1].Nested()
	if err != nil {
		t.Fatal(err)
	}
	type decoded struct {
		Name, Kind string
		Extra      []byte
		MTU        uint32
	}
	mtu, err := attrs[2].Uint32()
	if err != nil {
		t.Fatal(err)
	}
	got := decoded{Name: attrs[0].String(), Kind: inner[0].String(), Extra: inner[1].Value, MTU: mtu}
	want := decoded{Name: "eth0", Kind: "veth", Extra: []byte{7}, MTU: 1400}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestAttrSizes(t *testing.T) {
	a := Attr{Type: 1, Value: []byte{1, 2, 3}}
	if _, err := a.Uint32(); err == nil {
		t.Error("Uint32 of 3 bytes: no error")
	}
	if _, err := a.Addr(); err == nil {
		t.Error("Addr of 3 bytes: no error")
	}
	v6 := Attr{Type: 1, Value: netip.MustParseAddr("fd00::1").AsSlice()}
	if got, err := v6.Addr(); err != nil || got != netip.MustParseAddr("fd00::1") {
		t.Errorf("Addr = %v, %v", got, err)
	}
}

// Encoding a request and parsing it back as the kernel's answer gives the
// same fields: the kernel answers in the form it is asked in.
func TestRoundTrip(t *testing.T) {
	mtu := uint32(1400)
	txq := uint32(17)
	var le Encoder
	(&LinkRequest{Index: 7, Flags: unix.IFF_UP, Name: "eth0", MTU: mtu, TxQLen: &txq, Address: []byte{2, 0, 0, 0, 0, 1}, Kind: "dummy"}).encode(&le)
	link, err := ParseLink(le.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantLink := Link{Index: 7, Flags: unix.IFF_UP, Name: "eth0", MTU: mtu, TxQLen: txq, Address: []byte{2, 0, 0, 0, 0, 1}, Kind: "dummy", ParentNSID: -1}
	if diff := cmp.Diff(wantLink, link); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}

	addr := Address{Family: unix.AF_INET, PrefixLen: 24, Flags: unix.IFA_F_PERMANENT | unix.IFA_F_NOPREFIXROUTE, Scope: unix.RT_SCOPE_UNIVERSE, Index: 7,
		Local: netip.MustParseAddr("10.1.2.3"), Broadcast: netip.MustParseAddr("10.1.2.255"), Label: "eth0:x", ValidLifetime: 100, PreferredLifetime: 50}
	var ae Encoder
	addr.encode(&ae)
	gotAddr, err := ParseAddress(ae.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addr, gotAddr, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("address (-want +got):\n%s", diff)
	}

	pref := uint8(1)
	route := Route{Family: unix.AF_INET6, DstLen: 48, Table: 1000, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST,
		Dst: netip.MustParseAddr("fd00:1::"), Gateway: netip.MustParseAddr("fe80::1"), OutIndex: 7, Priority: 1024,
		Metrics: []byte{8, 0, unix.RTAX_MTU, 0, 0xdc, 5, 0, 0}, Pref: &pref}
	var re Encoder
	route.encode(&re)
	gotRoute, err := ParseRoute(re.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(route, gotRoute, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("route (-want +got):\n%s", diff)
	}
}

package netlink

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// inNewNetNS gives a test a fresh network namespace and a Conn in it.
func inNewNetNS(t *testing.T) (*sys.FD, *Conn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ns, err := sys.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := sys.InNetNS(ns.Int(), Dial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ns, c
}

func TestLiveLinksAddressesRoutes(t *testing.T) {
	_, c := inNewNetNS(t)
	links, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Name != "lo" || links[0].Index != 1 || links[0].Flags&unix.IFF_UP != 0 {
		t.Fatalf("a new namespace's links: %+v, want lo, down", links)
	}

	txq := uint32(50)
	mac := []byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	if err := c.NewLink(&LinkRequest{Index: 42, Name: "d0", Kind: "bridge", MTU: 1300, TxQLen: &txq, Address: mac}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLink(&LinkRequest{Index: 42, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
		t.Fatal(err)
	}
	d0, err := c.LinkByName("d0")
	if err != nil {
		t.Fatal(err)
	}
	want := Link{Index: 42, Type: unix.ARPHRD_ETHER, Name: "d0", MTU: 1300, TxQLen: 50, Address: mac, Kind: "bridge", ParentNSID: -1}
	got := d0
	got.Flags, got.Broadcast, got.OperState = 0, nil, 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("d0 (-want +got):\n%s", diff)
	}
	if d0.Flags&unix.IFF_UP == 0 {
		t.Errorf("d0 flags %#x: not up", d0.Flags)
	}

	a4 := Address{Family: unix.AF_INET, PrefixLen: 24, Index: 42, Local: netip.MustParseAddr("10.9.8.7"), Broadcast: netip.MustParseAddr("10.9.8.255"), Flags: unix.IFA_F_PERMANENT}
	a6 := Address{Family: unix.AF_INET6, PrefixLen: 64, Index: 42, Local: netip.MustParseAddr("fd00:9::7"), Flags: unix.IFA_F_PERMANENT | unix.IFA_F_NODAD}
	for _, a := range []*Address{&a4, &a6} {
		if err := c.AddAddress(a); err != nil {
			t.Fatal(err)
		}
	}
	addrs, err := c.Addresses(unix.AF_UNSPEC)
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, a := range addrs {
		prefixes = append(prefixes, a.Prefix().String())
	}
	for _, p := range []string{"10.9.8.7/24", "fd00:9::7/64"} {
		if !slices.Contains(prefixes, p) {
			t.Errorf("addresses %v lack %s", prefixes, p)
		}
	}

	r := Route{Family: unix.AF_INET, DstLen: 16, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_STATIC, Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST,
		Dst: netip.MustParseAddr("172.30.0.0"), Gateway: netip.MustParseAddr("10.9.8.1"), OutIndex: 42, Priority: 7}
	if err := c.AddRoute(&r); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRoute(&r); !errors.Is(err, unix.EEXIST) {
		t.Errorf("adding the route again: %v, want EEXIST", err)
	}
	routes, err := c.Routes(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, got := range routes {
		if got.Destination().String() == "172.30.0.0/16" {
			found = true
			if got.Gateway != r.Gateway || got.OutIndex != 42 || got.Priority != 7 || got.Protocol != unix.RTPROT_STATIC {
				t.Errorf("route back as %+v", got)
			}
		}
	}
	if !found {
		t.Errorf("route 172.30.0.0/16 not in %+v", routes)
	}

	if _, err := c.LinkByName("nonesuch"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("LinkByName(nonesuch): %v, want ENODEV", err)
	}
	bad := Address{Family: unix.AF_INET, PrefixLen: 40, Index: 42, Local: netip.MustParseAddr("10.1.1.1")}
	err = c.AddAddress(&bad)
	var nerr *Error
	if !errors.As(err, &nerr) || nerr.Errno != unix.EINVAL {
		t.Errorf("a /40 IPv4 address: %v, want EINVAL", err)
	}
}

// A veth made with its peer in another namespace names that namespace by
// the id NSIDOf gives it.
func TestLiveVethPeer(t *testing.T) {
	ns1, c1 := inNewNetNS(t)
	ns2, c2 := inNewNetNS(t)
	fd := ns2.Int()
	if err := c1.NewLink(&LinkRequest{Index: 5, Name: "in0", Kind: "veth", Peer: &LinkRequest{Index: 9, Name: "out0", NetNSFD: &fd}}); err != nil {
		t.Fatal(err)
	}
	in0, err := c1.LinkByName("in0")
	if err != nil {
		t.Fatal(err)
	}
	nsid, err := c1.NSIDOf(ns2.Int())
	if err != nil {
		t.Fatal(err)
	}
	if in0.Kind != "veth" || in0.Parent != 9 || in0.ParentNSID != nsid || nsid < 0 {
		t.Errorf("in0 = %+v, nsid of its peer's namespace %d", in0, nsid)
	}
	out0, err := c2.LinkByIndex(9)
	if err != nil {
		t.Fatal(err)
	}
	if out0.Name != "out0" || out0.Parent != in0.Index {
		t.Errorf("out0 = %+v, want the peer of %d", out0, in0.Index)
	}
	self, err := c1.NSIDOf(ns1.Int())
	if err != nil {
		t.Fatal(err)
	}
	if self == nsid {
		t.Errorf("the namespace's own id %d is its peer's", self)
	}
	// Moving a link keeps or changes its index as asked.
	one := ns1.Int()
	if err := c2.SetLink(&LinkRequest{Index: 9, NetNSFD: &one, NewIndex: 33}); err != nil {
		t.Fatal(err)
	}
	if moved, err := c1.LinkByIndex(33); err != nil || moved.Name != "out0" {
		t.Errorf("out0 moved: %+v, %v", moved, err)
	}
	if err := c1.DeleteLink(33); err != nil {
		t.Fatal(err)
	}
	if links, err := c1.Links(); err != nil || len(links) != 1 {
		t.Errorf("after deleting the pair: %+v, %v", links, err)
	}
}

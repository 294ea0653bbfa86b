package ns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// netns is a named network namespace made for a test with ip(8).
type netns struct {
	name string
	fd   int
}

func addNetns(t *testing.T, role string) netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := fmt.Sprintf("crsub-%s-%d", role, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		exec.Command("ip", "netns", "del", name).Run()
	})
	return netns{name, fd}
}

// ip runs ip(8) commands in the namespace, one per line.
func (n netns) ip(t *testing.T, script string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		args := append([]string{"-n", n.name}, strings.Fields(line)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

func (n netns) sysctl(t *testing.T, name, value string) {
	t.Helper()
	if _, err := sys.InNetNS(n.fd, func() (struct{}, error) {
		return struct{}{}, os.WriteFile("/proc/sys/net/"+name, []byte(value), 0)
	}); err != nil {
		t.Fatal(err)
	}
}

func (n netns) linkNames(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.name, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
	}
	slices.Sort(names)
	return names
}

// container builds the namespace the tests dump: lo up with one address
// more, a veth to the host with addresses on both ends, another whose host
// end is a port of a host bridge, a veth pair inside with one end a port
// of a bridge inside, routes and settings.
func container(t *testing.T, host netns) netns {
	t.Helper()
	c := addNetns(t, "ctr")
	host.ip(t, `link add hbr type bridge
link set hbr up`)
	c.ip(t, fmt.Sprintf(`link set lo up
addr add 127.0.0.2/8 dev lo
link add eth0 address 02:00:00:00:01:02 mtu 1400 txqlen 500 type veth peer name vh0-%[1]d netns %[2]s address 02:00:00:00:01:01
link add eth1 type veth peer name vh1-%[1]d netns %[2]s
link add in0 index 40 type veth peer name in1 index 41
link add br0 address 02:00:00:00:02:00 type bridge
link set in1 master br0
addr add 10.200.0.2/24 dev eth0
addr add 10.200.0.3/24 dev eth0
addr add fd00:200::2/64 dev eth0 nodad
addr add fd00:200::3/64 dev eth0
addr add 10.201.0.1/24 brd + dev br0
addr add 10.202.0.2 peer 10.202.0.1/32 dev eth1
link set eth0 up
link set eth1 up
link set br0 up
link set in1 up
link set in0 up
route add default via 10.200.0.1 dev eth0
route add 172.16.0.0/12 via 10.200.0.1 dev eth0 metric 50 mtu 1300
route add blackhole 192.0.2.0/24
route add fd00:300::/64 via fd00:200::1 dev eth0`, os.Getpid(), host.name))
	host.ip(t, fmt.Sprintf(`addr add 10.200.0.1/24 dev vh0-%[1]d
addr add fd00:200::1/64 dev vh0-%[1]d nodad
link set vh0-%[1]d up
link set vh1-%[1]d master hbr
link set vh1-%[1]d up`, os.Getpid()))
	c.sysctl(t, "ipv4/ip_forward", "1")
	c.sysctl(t, "ipv4/ip_local_port_range", "20000 40000")
	c.sysctl(t, "ipv4/ping_group_range", "0 100")
	c.sysctl(t, "ipv6/conf/in0/disable_ipv6", "1")
	c.sysctl(t, "ipv4/conf/eth1/forwarding", "0")
	c.sysctl(t, "ipv4/conf/all/arp_accept", "1")
	c.sysctl(t, "ipv4/conf/default/rp_filter", "2")
	c.sysctl(t, "ipv4/conf/lo/accept_local", "1")
	c.sysctl(t, "ipv6/conf/default/hop_limit", "33")
	c.sysctl(t, "ipv6/conf/eth0/stable_secret", "2607:f0d0:1002:51::4")
	c.sysctl(t, "unix/max_dgram_qlen", "77")
	c.sysctl(t, "ipv6/conf/lo/mtu", "1280") // lo is up: bringing it up again would reset it
	if _, err := exec.LookPath("nft"); err == nil {
		c.exec(t, "nft", "add table ip filter")
		c.exec(t, "nft", "add chain ip filter INPUT { type filter hook input priority 0 ; }")
		c.exec(t, "nft", `add rule ip filter INPUT iifname "lo" ip protocol tcp ct state new,established counter accept`)
		c.exec(t, "nft", "add table inet crsub") // the network lock: not the container's
	}
	if _, err := exec.LookPath("iptables-legacy"); err == nil {
		c.exec(t, "iptables-legacy", "-w -A INPUT -i lo -p tcp -m state --state NEW,ESTABLISHED -j ACCEPT")
	}
	return c
}

// exec runs a command in the namespace.
func (n netns) exec(t *testing.T, cmd, args string) {
	t.Helper()
	argv := append([]string{"netns", "exec", n.name, cmd}, strings.Fields(args)...)
	if cmd == "nft" {
		argv = []string{"netns", "exec", n.name, cmd, args}
	}
	if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", cmd, args, err, out)
	}
}

// comparable leaves out of a record what is not the same from one
// namespace to another: the index the host gives a veth's host end, the
// flags the kernel sets on addresses as it checks them, the nodad a restart
// gives IPv6 addresses, and IPv6 link-local
// addresses (made from the hardware address, when the kernel gets to it).
func comparable(rec *ckpt.Network) *ckpt.Network {
	out := *rec
	out.Links = nil
	for _, l := range rec.Links {
		if l.Peer != nil && l.Peer.Where == ckpt.PeerHost {
			p := *l.Peer
			p.Index = 0
			p.Addresses = comparableAddresses(p.Addresses)
			l.Peer = &p
		}
		out.Links = append(out.Links, l)
	}
	out.Addresses = comparableAddresses(rec.Addresses)
	out.Nftables = counters.ReplaceAllString(out.Nftables, "")
	out.IPTablesLegacy = counters.ReplaceAllString(out.IPTablesLegacy, "")
	out.IP6TablesLegacy = counters.ReplaceAllString(out.IP6TablesLegacy, "")
	return &out
}

// counters are the packet and byte counts of firewall rules and chains.
var counters = regexp.MustCompile(`packets \d+ bytes \d+|\[\d+:\d+\]`)

func comparableAddresses(as []ckpt.NetAddress) []ckpt.NetAddress {
	var out []ckpt.NetAddress
	for _, a := range as {
		if a.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		a.Flags &= settableAddressFlags | unix.IFA_F_PERMANENT | unix.IFA_F_SECONDARY
		if a.Prefix.Addr().Is6() {
			a.Flags &^= unix.IFA_F_NODAD
		}
		out = append(out, a)
	}
	return out
}

var cmpNetip = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestNetworkDumpRestore(t *testing.T) {
	host := addNetns(t, "host")
	ctr := container(t, host)
	rec, err := DumpNetwork(ctr.fd, host.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	// What was read, in a few words: the kinds, the peers, the masters.
	var got []string
	for _, l := range rec.Links {
		s := fmt.Sprintf("%d %s %s", l.Index, l.Name, l.Kind)
		if l.Peer != nil {
			s += fmt.Sprintf(" peer=%s:%s", l.Peer.Where, l.Peer.Name)
			if l.Peer.Master != "" {
				s += " peer-master=" + l.Peer.Master
			}
		}
		if l.Master != "" {
			s += " master=" + l.Master
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want := []string{
		"1 lo loopback",
		fmt.Sprintf("2 eth0 veth peer=host:vh0-%d", pid),
		fmt.Sprintf("3 eth1 veth peer=host:vh1-%d peer-master=hbr", pid),
		"40 in0 veth peer=inside:in1",
		"41 in1 veth peer=inside:in0 master=br0",
		"4 br0 bridge",
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	sysctls := map[string]string{}
	for _, s := range rec.Sysctls {
		sysctls[s.Name] = s.Value
	}
	for name, want := range map[string]string{"ipv4/ip_forward": "1", "ipv4/ip_local_port_range": "20000\t40000", "ipv6/conf/in0/disable_ipv6": "1", "ipv4/conf/eth1/forwarding": "0",
		"ipv4/conf/all/arp_accept": "1", "ipv4/conf/default/rp_filter": "2", "ipv4/conf/lo/accept_local": "1", "ipv6/conf/default/hop_limit": "33",
		"ipv6/conf/eth0/stable_secret": "2607:f0d0:1002:0051:0000:0000:0000:0004", "unix/max_dgram_qlen": "77", "ipv6/conf/lo/mtu": "1280"} {
		if sysctls[name] != want {
			t.Errorf("sysctl %s = %q, want %q", name, sysctls[name], want)
		}
	}
	var routes []string
	for _, r := range rec.Routes {
		routes = append(routes, fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gateway, r.Link))
	}
	slices.Sort(routes)
	wantRoutes := []string{"0.0.0.0/0 via 10.200.0.1 dev eth0", "172.16.0.0/12 via 10.200.0.1 dev eth0", "192.0.2.0/24 via invalid IP dev ", "fd00:300::/64 via fd00:200::1 dev eth0"}
	if diff := cmp.Diff(wantRoutes, routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}

	// Restored into a new namespace, with another host (the first one
	// still has the peers), it reads back the same.
	host2 := addNetns(t, "host2")
	host2.ip(t, "link add hbr type bridge\nlink set hbr up")
	fresh := addNetns(t, "fresh")
	undo, err := RestoreNetwork(NetworkTarget{NS: fresh.fd, Host: host2.fd}, rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DumpNetwork(fresh.fd, host2.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Nftables, "crsub") || !strings.Contains(rec.Nftables, "ct state established,new") {
		t.Errorf("nftables: %q, want the container's table and not crsub's lock", rec.Nftables)
	}
	if _, err := exec.LookPath("iptables-legacy"); err == nil && !strings.Contains(rec.IPTablesLegacy, "-A INPUT -i lo -p tcp -m state --state NEW,ESTABLISHED -j ACCEPT") {
		t.Errorf("legacy iptables: %q, want the container's rule", rec.IPTablesLegacy)
	}
	if diff := cmp.Diff(comparable(rec), comparable(back), cmpNetip, cmpPrefix); diff != "" {
		t.Errorf("restored namespace (-dumped +restored):\n%s", diff)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"lo"}, fresh.linkNames(t)); diff != "" {
		t.Errorf("links left after undo (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hbr", "lo"}, host2.linkNames(t)); diff != "" {
		t.Errorf("host links left after undo (-want +got):\n%s", diff)
	}

	// The first host still has the peers: a restart there is refused by
	// name before anything is made.
	other := addNetns(t, "other")
	_, err = RestoreNetwork(NetworkTarget{NS: other.fd, Host: host.fd, PeerWait: 100 * time.Millisecond}, rec)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("its veth peer vh0-%d is on the host already", pid)) {
		t.Errorf("restoring beside the original: %v, want its peer named", err)
	}
	if diff := cmp.Diff([]string{"lo"}, other.linkNames(t)); diff != "" {
		t.Errorf("links left after a refused restore (-want +got):\n%s", diff)
	}

	// Peers whose namespace goes a moment later are waited for.
	go func() {
		time.Sleep(200 * time.Millisecond)
		exec.Command("ip", "-n", ctr.name, "link", "del", "eth0").Run()
		exec.Command("ip", "-n", ctr.name, "link", "del", "eth1").Run()
	}()
	undo, err = RestoreNetwork(NetworkTarget{NS: other.fd, Host: host.fd, PeerWait: 5 * time.Second}, rec)
	if err != nil {
		t.Fatalf("restoring once the original peers are gone: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
}

// Links the caller gives: adopted, renamed, addressed, and given back on
// undo; a bad one refused by name with nothing made.
func TestNetworkSuppliedLinks(t *testing.T) {
	host := addNetns(t, "host")
	ctr := container(t, host)
	rec, err := DumpNetwork(ctr.fd, host.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	host2 := addNetns(t, "host2")
	host2.ip(t, `link add hbr type bridge
link add given0 type veth peer name given0p
link add given1 type veth peer name given1p
addr add 10.9.9.9/32 dev given1
link set given1 up
link set given1p up`)
	fresh := addNetns(t, "fresh")

	for _, tc := range []struct {
		links map[string]string
		want  string
	}{
		{map[string]string{"eth0": "nonesuch"}, "--link eth0=nonesuch: there is no link nonesuch on the host"},
		{map[string]string{"eth7": "given0"}, "--link eth7=given0: the image has no link eth7"},
	} {
		_, err := RestoreNetwork(NetworkTarget{NS: fresh.fd, Host: host2.fd, Links: tc.links}, rec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RestoreNetwork with %v: %v, want %q", tc.links, err, tc.want)
		}
		if diff := cmp.Diff([]string{"lo"}, fresh.linkNames(t)); diff != "" {
			t.Errorf("links left (-want +got):\n%s", diff)
		}
	}

	before := host2.linkNames(t)
	undo, err := RestoreNetwork(NetworkTarget{NS: fresh.fd, Host: host2.fd, Links: map[string]string{"eth0": "given0", "eth1": "given1"}}, rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DumpNetwork(fresh.fd, host2.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	var eth0 []string
	for _, a := range back.Addresses {
		if a.Link == "eth0" && !a.Prefix.Addr().IsLinkLocalUnicast() {
			eth0 = append(eth0, a.Prefix.String())
		}
	}
	if diff := cmp.Diff([]string{"10.200.0.2/24", "10.200.0.3/24", "fd00:200::3/64", "fd00:200::2/64"}, eth0); diff != "" {
		t.Errorf("eth0's addresses (-want +got):\n%s", diff)
	}
	i := slices.IndexFunc(back.Links, func(l ckpt.NetLink) bool { return l.Name == "eth0" })
	if i < 0 || back.Links[i].Index != 2 || back.Links[i].MTU != 1400 || back.Links[i].Flags&unix.IFF_UP == 0 || back.Links[i].Peer.Name != "given0p" {
		t.Errorf("eth0 adopted: %+v", back.Links)
	}
	if slices.Contains(host2.linkNames(t), "given0") {
		t.Errorf("given0 still on the host")
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, host2.linkNames(t)); diff != "" {
		t.Errorf("host links after undo (-before +after):\n%s", diff)
	}
	addr, _ := exec.Command("ip", "-n", host2.name, "-o", "addr", "show", "dev", "given1").CombinedOutput()
	link, _ := exec.Command("ip", "-n", host2.name, "-o", "link", "show", "dev", "given1").CombinedOutput()
	if !strings.Contains(string(addr), "10.9.9.9/32") || !strings.Contains(string(link), ",UP") {
		t.Errorf("given1 back without its address or down:\n%s%s", addr, link)
	}
}

// A namespace the caller gives: restored into when empty, checked when
// not (unless taken as given).
func TestJoinNetwork(t *testing.T) {
	host := addNetns(t, "host")
	ctr := container(t, host)
	rec, err := DumpNetwork(ctr.fd, host.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The original itself matches; joining it changes nothing.
	undo, err := JoinNetwork(NetworkTarget{NS: ctr.fd, Host: host.fd}, rec)
	if err != nil {
		t.Fatalf("joining the original: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}

	used := addNetns(t, "used")
	used.ip(t, "link set lo up\nlink add eth0 type veth peer name x0\naddr add 10.200.0.2/24 dev eth0")
	_, err = JoinNetwork(NetworkTarget{NS: used.fd, Host: host.fd}, rec)
	for _, want := range []string{"does not match the image", "its link eth0 lacks address 10.200.0.3/24", "it has no link br0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("joining a namespace unlike the image: %v, want %q", err, want)
		}
	}
	// Unless the caller configures it (a container runtime): then taken
	// as it is, changed in nothing.
	undo, err = JoinNetwork(NetworkTarget{NS: used.fd, Host: host.fd, AsGiven: true}, rec)
	if err != nil {
		t.Fatalf("joining a namespace unlike the image, as given: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"eth0", "lo", "x0"}, used.linkNames(t)); diff != "" {
		t.Errorf("links of the namespace taken as given (-want +got):\n%s", diff)
	}

	empty := addNetns(t, "empty")
	host2 := addNetns(t, "host2")
	host2.ip(t, "link add hbr type bridge")
	undo, err = JoinNetwork(NetworkTarget{NS: empty.fd, Host: host2.fd}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"br0", "eth0", "eth1", "in0", "in1", "lo"}, empty.linkNames(t)); diff != "" {
		t.Errorf("links restored into an empty namespace (-want +got):\n%s", diff)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"lo"}, empty.linkNames(t)); diff != "" {
		t.Errorf("links left after undo (-want +got):\n%s", diff)
	}
	out, _ := exec.Command("ip", "-n", empty.name, "-o", "link", "show", "lo").CombinedOutput()
	if strings.Contains(string(out), ",UP") {
		t.Errorf("lo left up after undo: %s", out)
	}
}

// A namespace made as runtimes make one for a container (its links there
// with their addresses, left down with lo) is joined: the links get the
// image's MTU, state and routes, lo its addresses and state; undo puts them
// back.
func TestJoinNetworkMadeByRuntime(t *testing.T) {
	host := addNetns(t, "host")
	src := addNetns(t, "src")
	src.ip(t, fmt.Sprintf(`link set lo up
link add eth0 mtu 1400 type veth peer name vs-%[1]d netns %[2]s
addr add 10.203.0.2/24 dev eth0
addr add fd00:203::2/64 dev eth0 nodad
link set eth0 up
route add 192.0.2.0/24 via 10.203.0.1 dev eth0`, os.Getpid(), host.name))
	rec, err := DumpNetwork(src.fd, host.fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := addNetns(t, "rt")
	rt.ip(t, fmt.Sprintf(`link add eth0 type veth peer name vr-%[1]d netns %[2]s
addr add 10.203.0.2/24 dev eth0
addr add fd00:203::2/64 dev eth0 nodad`, os.Getpid(), host.name))
	before := rt.links(t)
	undo, err := JoinNetwork(NetworkTarget{NS: rt.fd, Host: host.fd}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"lo": "UP mtu 65536 127.0.0.1/8", "eth0": "UP mtu 1400 10.203.0.2/24"}, rt.links(t)); diff != "" {
		t.Errorf("joined (-want +got):\n%s", diff)
	}
	if out, err := exec.Command("ip", "-n", rt.name, "route", "show", "192.0.2.0/24").CombinedOutput(); err != nil || !strings.Contains(string(out), "via 10.203.0.1 dev eth0") {
		t.Errorf("the route through eth0: %q, %v", out, err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, rt.links(t)); diff != "" {
		t.Errorf("after undo (-before +after):\n%s", diff)
	}
}

// links says, by name, whether each link of the namespace is up, its MTU
// and its IPv4 addresses.
func (n netns) links(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.name, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	links := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		state := "DOWN"
		if strings.Contains(f[2], ",UP") || strings.Contains(f[2], "<UP") {
			state = "UP"
		}
		links[name] = state + " mtu " + f[4]
		addrs, err := exec.Command("ip", "-n", n.name, "-o", "-4", "addr", "show", "dev", name).CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr show: %v: %s", err, addrs)
		}
		for _, a := range strings.Split(strings.TrimSpace(string(addrs)), "\n") {
			if af := strings.Fields(a); len(af) > 3 {
				links[name] += " " + af[3]
			}
		}
	}
	return links
}

// A veth between two namespaces of the image is made once, whichever
// restore comes first, with each end as its namespace's record has it.
func TestNetworkVethBetweenNamespaces(t *testing.T) {
	host := addNetns(t, "host")
	a := addNetns(t, "a")
	b := addNetns(t, "b")
	a.ip(t, fmt.Sprintf(`link add br0 type bridge
link add a0 index 12 address 02:00:00:00:0a:01 mtu 1400 type veth peer name b0 index 22 netns %s address 02:00:00:00:0b:01
link set a0 master br0
addr add 10.210.0.1/24 dev br0
link set br0 up
link set a0 up`, b.name))
	b.ip(t, `addr add 10.210.0.2/24 dev b0
link set b0 mtu 1300
link set b0 up
link set lo up`)
	inode := func(n netns) uint64 {
		var st unix.Stat_t
		if err := unix.Fstat(n.fd, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	dump := func(n, other netns, host netns) *ckpt.Network {
		t.Helper()
		rec, err := DumpNetwork(n.fd, host.fd, map[uint64]int{inode(other): other.fd})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	recA, recB := dump(a, b, host), dump(b, a, host)
	wantA := &ckpt.VethPeer{Where: ckpt.PeerNamespace, Index: 22, Namespace: inode(b), Name: "b0"}
	wantB := &ckpt.VethPeer{Where: ckpt.PeerNamespace, Index: 12, Namespace: inode(a), Name: "a0"}
	peerOf := func(rec *ckpt.Network, name string) *ckpt.VethPeer {
		for _, l := range rec.Links {
			if l.Name == name {
				return l.Peer
			}
		}
		return nil
	}
	if diff := cmp.Diff(wantA, peerOf(recA, "a0")); diff != "" {
		t.Errorf("a0's peer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantB, peerOf(recB, "b0")); diff != "" {
		t.Errorf("b0's peer (-want +got):\n%s", diff)
	}

	// Restored in either order, into two new namespaces, the pair reads
	// back as it was (the new namespaces' inodes standing for the old).
	for _, order := range []string{"a first", "b first"} {
		t.Run(order, func(t *testing.T) {
			a2, b2 := addNetns(t, "a2"), addNetns(t, "b2")
			pairs := &VethPairs{}
			defer pairs.Close()
			restores := []struct {
				n     netns
				rec   *ckpt.Network
				inode uint64
			}{{a2, recA, inode(a)}, {b2, recB, inode(b)}}
			if order == "b first" {
				slices.Reverse(restores)
			}
			for _, r := range restores {
				undo, err := RestoreNetwork(NetworkTarget{NS: r.n.fd, Host: host.fd, Inode: r.inode, Pairs: pairs}, r.rec)
				if err != nil {
					t.Fatal(err)
				}
				defer undo()
			}
			backA, backB := dump(a2, b2, host), dump(b2, a2, host)
			for _, l := range backA.Links {
				if l.Peer != nil && l.Peer.Namespace == inode(b2) {
					l.Peer.Namespace = inode(b)
				}
			}
			for _, l := range backB.Links {
				if l.Peer != nil && l.Peer.Namespace == inode(a2) {
					l.Peer.Namespace = inode(a)
				}
			}
			// Carrier flags (running, lower up) come a moment later.
			settable := func(rec *ckpt.Network) *ckpt.Network {
				out := comparable(rec)
				for i := range out.Links {
					out.Links[i].Flags &= settableLinkFlags
				}
				return out
			}
			if diff := cmp.Diff(settable(recA), settable(backA), cmpNetip, cmpPrefix); diff != "" {
				t.Errorf("a restored (-dumped +restored):\n%s", diff)
			}
			if diff := cmp.Diff(settable(recB), settable(backB), cmpNetip, cmpPrefix); diff != "" {
				t.Errorf("b restored (-dumped +restored):\n%s", diff)
			}
		})
	}
}

package ns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlink"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/sys"
)

// A network namespace is recorded as its links, addresses, routes and a few
// settings, read over route netlink and /proc/sys/net from a thread that
// entered it, and made again the same way in the namespace a restart
// creates: links first (with their indexes, names and hardware addresses),
// then bridge ports, settings, addresses, flags (up/down), routes, and the
// firewall (net_firewall.go). "The
// host" is the network namespace crsub runs in: a veth whose peer is there
// is made again with that peer there, named and addressed as it was, as
// CRIU does; the caller may give a link of its own instead (links).

// netKind: a network namespace is made by CLONE_NEWNET when the first task
// in it is created, with a loopback link, down, and nothing else; its
// network record follows that task's process record and fills it. A
// namespace the caller gave is filled if empty, else checked
// (JoinNetwork).
var netKind = &Kind{
	Name:      ckpt.NamespaceNet,
	CloneFlag: unix.CLONE_NEWNET,
	DumpObjects: func(c *DumpContext, n *ckpt.Namespace, ref ckpt.Objref) error {
		inside, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", n.Pid))
		if err != nil {
			return err
		}
		defer inside.Close()
		host, err := os.Open("/proc/self/ns/net")
		if err != nil {
			return err
		}
		defer host.Close()
		others := map[uint64]int{}
		for inode, pid := range c.Networks {
			if inode == n.Inode {
				continue
			}
			f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				return err
			}
			defer f.Close()
			others[inode] = int(f.Fd())
		}
		rec, err := DumpNetwork(int(inside.Fd()), int(host.Fd()), others)
		if err != nil {
			return err
		}
		return c.W.Write(ckpt.TypeNetwork, 0, []ckpt.Objref{ref}, rec)
	},
	Objects: map[ckpt.Type]func(*RestoreContext, *Restored, *ckpt.Record) error{
		ckpt.TypeNetwork: func(c *RestoreContext, n *Restored, r *ckpt.Record) error {
			var rec ckpt.Network
			if err := r.Decode(&rec); err != nil {
				return err
			}
			host, err := os.Open("/proc/self/ns/net")
			if err != nil {
				return err
			}
			if c.vethPairs == nil {
				c.vethPairs = &VethPairs{}
				c.OnFailure(c.vethPairs.Close, c.vethPairs.Close)
			}
			nsfd := int(n.File().Fd())
			unlock, err := lockRestored(c, nsfd, n.Supplied)
			if err != nil {
				host.Close()
				return err
			}
			t := NetworkTarget{NS: nsfd, Host: int(host.Fd()), Links: c.Links, AsGiven: c.NetworkAsGiven, PeerWait: c.PeerWait, Inode: n.Record.Inode, Pairs: c.vethPairs, BeforeRun: c.BeforeRun}
			restore := RestoreNetwork
			if n.Supplied {
				restore = JoinNetwork
			}
			undo, err := restore(t, &rec)
			if err != nil {
				host.Close()
				return errors.Join(err, unlock(false))
			}
			// Undone while the namespace is still held (n until the
			// restart ends), before crsub lets go of it; the lock goes
			// just before the tasks run.
			c.OnFailure(func() error {
				defer host.Close()
				return errors.Join(undo(), unlock(false))
			}, host.Close)
			c.BeforeRun(func() error { return unlock(true) })
			return nil
		},
	},
}

// lockRestored holds the namespace of nsfd still from outside
// (netlock.HoldInbound) while the restart fills it and restores its
// sockets: a peer outside that retransmits into it once its links are up,
// before the socket of its connection is back, would be answered with a
// reset. The unlock it returns lets the packets through again; once the
// restart is done (done true) it also opens a namespace given that the
// checkpoint locked whole (its processes' own, joined again), which a
// failed restart leaves locked as it found it.
func lockRestored(c *RestoreContext, nsfd int, supplied bool) (unlock func(done bool) error, err error) {
	if err := netlock.HoldInbound(nsfd); err == netlock.ErrUnavailable {
		c.Log.Warn("cannot hold the network namespace still while it is restored: peers of its connections may see them reset", "err", err)
		return func(bool) error { return nil }, nil
	} else if err != nil {
		return nil, fmt.Errorf("holding the network namespace still: %w", err)
	}
	return func(done bool) error {
		err := netlock.ReleaseInbound(nsfd)
		if done && supplied {
			err = errors.Join(err, netlock.UnlockNamespace(nsfd))
		}
		return err
	}, nil
}

// settableLinkFlags are the IFF_* flags a restart sets as they were; the
// others are the kernel's to say.
const settableLinkFlags = unix.IFF_UP | unix.IFF_NOARP | unix.IFF_PROMISC | unix.IFF_ALLMULTI | unix.IFF_MULTICAST

// settableAddressFlags are the IFA_F_* flags a restart asks for.
const settableAddressFlags = unix.IFA_F_NODAD | unix.IFA_F_HOMEADDRESS | unix.IFA_F_MANAGETEMPADDR | unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_MCAUTOJOIN

// globalSysctls are the namespace-wide settings recorded, in the order a
// restart writes them: ip_forward sets every device's forwarding as it
// changes, so the devices' settings (devconfs) come after.
var globalSysctls = [...]string{
	"ipv4/ip_forward",
	"ipv4/ip_local_port_range",
	"ipv4/ip_unprivileged_port_start",
	"ipv4/ping_group_range",
	"core/somaxconn",
	"unix/max_dgram_qlen",
}

// devconfs4 and devconfs6 are the settings recorded of each IPv4 and IPv6
// device configuration (ipvN/conf/DEV/: all, default, each link), CRIU's,
// in the order a restart writes them: disable_ipv6 before mtu, which it
// resets, and accept_redirects after forwarding, which resets it.
var devconfs4 = [...]string{
	"accept_local", "accept_source_route", "arp_accept", "arp_announce", "arp_filter", "arp_ignore", "arp_notify",
	"bootp_relay", "disable_policy", "disable_xfrm", "force_igmp_version", "forwarding",
	"igmpv2_unsolicited_report_interval", "igmpv3_unsolicited_report_interval", "log_martians", "medium_id",
	"promote_secondaries", "proxy_arp", "proxy_arp_pvlan", "route_localnet", "rp_filter", "secure_redirects",
	"send_redirects", "shared_media", "src_valid_mark", "tag", "ignore_routes_with_linkdown", "drop_gratuitous_arp",
	"drop_unicast_in_l2_multicast", "accept_redirects",
}

var devconfs6 = [...]string{
	"accept_dad", "accept_ra", "accept_ra_defrtr", "accept_ra_from_local", "accept_ra_min_hop_limit", "accept_ra_mtu",
	"accept_ra_pinfo", "accept_ra_rt_info_max_plen", "accept_ra_rtr_pref", "accept_source_route", "autoconf",
	"dad_transmits", "disable_ipv6", "drop_unicast_in_l2_multicast", "drop_unsolicited_na", "force_mld_version",
	"force_tllao", "forwarding", "hop_limit", "ignore_routes_with_linkdown", "keep_addr_on_down", "max_addresses",
	"max_desync_factor", "mldv1_unsolicited_report_interval", "mldv2_unsolicited_report_interval", "mtu",
	"ndisc_notify", "optimistic_dad", "proxy_ndp", "regen_max_retry", "router_probe_interval",
	"router_solicitation_delay", "router_solicitation_interval", "router_solicitations", "stable_secret",
	"suppress_frag_ndisc", "temp_prefered_lft", "temp_valid_lft", "use_oif_addrs_only", "use_optimistic",
	"use_tempaddr", "accept_redirects",
}

// sysctlNames are the settings recorded, in the order a restart writes
// them: the global ones, then the device configurations of all (which sets
// the others' forwarding as it changes), default and each link.
func sysctlNames(links []ckpt.NetLink) []string {
	names := slices.Clone(globalSysctls[:])
	devs := []string{"all", "default"}
	for _, l := range links {
		devs = append(devs, l.Name)
	}
	for _, dev := range devs {
		for _, c := range devconfs4 {
			names = append(names, "ipv4/conf/"+dev+"/"+c)
		}
		for _, c := range devconfs6 {
			names = append(names, "ipv6/conf/"+dev+"/"+c)
		}
	}
	return names
}

// DumpNetwork reads what the network namespace of nsfd holds. hostfd is
// crsub's own network namespace, where the veth peers a restart makes again
// are looked up, and others the image's other network namespaces, by
// inode: a veth peer in one is recorded as there.
func DumpNetwork(nsfd, hostfd int, others map[uint64]int) (*ckpt.Network, error) {
	inside, err := sys.InNetNS(nsfd, netlink.Dial)
	if err != nil {
		return nil, err
	}
	defer inside.Close()
	host, err := sys.InNetNS(hostfd, netlink.Dial)
	if err != nil {
		return nil, err
	}
	defer host.Close()

	links, err := inside.Links()
	if err != nil {
		return nil, fmt.Errorf("links: %w", err)
	}
	names := map[int32]string{}
	for _, l := range links {
		names[l.Index] = l.Name
	}
	// Listing the links gave the namespaces of veth peers ids; the host's
	// is asked after it.
	hostID, err := inside.NSIDOf(hostfd)
	if err != nil {
		return nil, fmt.Errorf("the host's namespace id: %w", err)
	}
	peerNamespaces := map[int32]imageNamespace{}
	for inode, fd := range others {
		id, err := inside.NSIDOf(fd)
		if err != nil {
			return nil, fmt.Errorf("the id of network namespace %d: %w", inode, err)
		}
		if id >= 0 {
			peerNamespaces[id] = imageNamespace{inode: inode, fd: fd}
		}
	}
	var fresh map[string]string // a new namespace's links: name → driver kind
	rec := &ckpt.Network{}
	for _, l := range links {
		nl := ckpt.NetLink{Index: int(l.Index), Name: l.Name, Flags: l.Flags, MTU: l.MTU, TxQLen: l.TxQLen, MAC: macString(l), Master: names[l.Master]}
		switch {
		case l.Type == unix.ARPHRD_LOOPBACK:
			nl.Kind, nl.Builtin = ckpt.LinkLoopback, true
		case l.Kind == ckpt.LinkVeth:
			nl.Kind = ckpt.LinkVeth
			if nl.Peer, err = dumpPeer(host, l, hostID, names, peerNamespaces); err != nil {
				return nil, fmt.Errorf("link %s: %w", l.Name, err)
			}
		case l.Kind == ckpt.LinkBridge || l.Kind == ckpt.LinkDummy:
			nl.Kind = l.Kind
		case l.Kind == ckpt.LinkTun && l.Tun != nil:
			nl.Kind, nl.Tun = ckpt.LinkTun, tunLink(l.Tun)
		default:
			nl.DriverKind = l.Kind
			if fresh == nil {
				if fresh, err = newNamespaceLinks(); err != nil {
					return nil, err
				}
			}
			if kind, ok := fresh[l.Name]; ok && kind == l.Kind {
				nl.Kind, nl.Builtin = l.Kind, true
			}
		}
		rec.Links = append(rec.Links, nl)
	}

	addrs, err := inside.Addresses(unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Family == unix.AF_INET6 && a.Flags&unix.IFA_F_TEMPORARY != 0 {
			continue // a privacy address: the kernel makes new ones
		}
		rec.Addresses = append(rec.Addresses, recordAddress(a, names[a.Index]))
	}

	routes, err := inside.Routes(unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if !madeByUser(r) {
			continue
		}
		nr := ckpt.NetRoute{
			Dst: r.Destination(), Gateway: r.Gateway, PrefSrc: r.PrefSrc, Link: names[r.OutIndex],
			Table: r.Table, Protocol: r.Protocol, Scope: r.Scope, Type: r.Type, TOS: r.TOS,
			Priority: r.Priority, Flags: r.Flags, Metrics: r.Metrics, Pref: r.Pref,
		}
		if r.Src.IsValid() {
			nr.Src = netipPrefix(r.Src, r.SrcLen)
		}
		if r.Multipath {
			return nil, fmt.Errorf("route to %s in table %d has several next hops: not supported", nr.Dst, r.Table)
		}
		rec.Routes = append(rec.Routes, nr)
	}

	rec.Sysctls, err = sys.InNetNS(nsfd, func() ([]ckpt.Sysctl, error) { return readSysctls(rec.Links) })
	if err != nil {
		return nil, err
	}
	if _, err := sys.InNetNS(nsfd, func() (struct{}, error) { return struct{}{}, dumpFirewall(rec) }); err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return rec, nil
}

// imageNamespace is another network namespace of the image: its inode,
// and an fd on it.
type imageNamespace struct {
	inode uint64
	fd    int
}

// dumpPeer says where a veth's other end is, and how it is on the host.
func dumpPeer(host *netlink.Conn, l netlink.Link, hostID int32, names map[int32]string, others map[int32]imageNamespace) (*ckpt.VethPeer, error) {
	p := &ckpt.VethPeer{Index: int(l.Parent)}
	other, inImage := others[l.ParentNSID]
	switch {
	case l.ParentNSID < 0:
		p.Where, p.Name = ckpt.PeerInside, names[l.Parent]
		return p, nil
	case inImage && l.ParentNSID != hostID:
		c, err := sys.InNetNS(other.fd, netlink.Dial)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		pl, err := c.LinkByIndex(l.Parent)
		if err != nil {
			return nil, fmt.Errorf("its peer, link %d in network namespace %d: %w", l.Parent, other.inode, err)
		}
		p.Where, p.Namespace, p.Name = ckpt.PeerNamespace, other.inode, pl.Name
		return p, nil
	case l.ParentNSID != hostID:
		p.Where = ckpt.PeerElsewhere
		return p, nil
	}
	p.Where = ckpt.PeerHost
	hl, err := host.LinkByIndex(l.Parent)
	if err != nil {
		return nil, fmt.Errorf("its peer, link %d on the host: %w", l.Parent, err)
	}
	p.Name, p.Flags, p.MTU, p.TxQLen, p.MAC = hl.Name, hl.Flags, hl.MTU, hl.TxQLen, macString(hl)
	if hl.Master != 0 {
		m, err := host.LinkByIndex(hl.Master)
		if err != nil {
			return nil, fmt.Errorf("the bridge of its peer %s: %w", hl.Name, err)
		}
		p.Master = m.Name
	}
	addrs, err := host.Addresses(unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("host addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Index == hl.Index && !(a.Family == unix.AF_INET6 && a.Flags&unix.IFA_F_TEMPORARY != 0) {
			p.Addresses = append(p.Addresses, recordAddress(a, hl.Name))
		}
	}
	return p, nil
}

// madeByUser says whether a route is one someone added, not one the
// kernel derived from an address or link, learned from a router, or
// cached.
func madeByUser(r netlink.Route) bool {
	switch {
	case r.Table == unix.RT_TABLE_LOCAL, r.Flags&unix.RTM_F_CLONED != 0:
		return false
	case r.Protocol == unix.RTPROT_KERNEL, r.Protocol == unix.RTPROT_REDIRECT, r.Protocol == unix.RTPROT_RA:
		return false
	}
	return true
}

// newNamespaceLinks lists the links the kernel puts in every new network
// namespace here (lo, and the fallback tunnels of the tunnel drivers
// loaded), by name, with their driver kinds.
func newNamespaceLinks() (map[string]string, error) {
	fd, err := sys.NewNetNS()
	if err != nil {
		return nil, fmt.Errorf("a new network namespace, to tell the kernel's links: %w", err)
	}
	defer fd.Close()
	links, err := sys.InNetNS(fd.Int(), func() ([]netlink.Link, error) {
		c, err := netlink.Dial()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Links()
	})
	if err != nil {
		return nil, fmt.Errorf("a new network namespace's links: %w", err)
	}
	kinds := map[string]string{}
	for _, l := range links {
		kinds[l.Name] = l.Kind
	}
	return kinds, nil
}

func recordAddress(a netlink.Address, link string) ckpt.NetAddress {
	return ckpt.NetAddress{
		Link: link, Prefix: a.Prefix(), Peer: a.Peer, Broadcast: a.Broadcast, Label: a.Label,
		Flags: a.Flags, Scope: a.Scope, ValidLifetime: a.ValidLifetime, PreferredLifetime: a.PreferredLifetime,
	}
}

func netipPrefix(a netip.Addr, bits uint8) netip.Prefix { return netip.PrefixFrom(a, int(bits)) }

func macString(l netlink.Link) string {
	if l.Type == unix.ARPHRD_LOOPBACK || len(l.Address) == 0 {
		return ""
	}
	return net.HardwareAddr(l.Address).String()
}

// readSysctls reads the settings recorded, on a thread in the namespace.
// One the kernel does not have (no IPv6) is left out, and so is an IPv6
// stable_secret never set (reading it fails with EIO).
func readSysctls(links []ckpt.NetLink) ([]ckpt.Sysctl, error) {
	var out []ckpt.Sysctl
	for _, name := range sysctlNames(links) {
		b, err := os.ReadFile("/proc/sys/net/" + name)
		if errors.Is(err, os.ErrNotExist) || (errors.Is(err, unix.EIO) && strings.HasSuffix(name, "/stable_secret")) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("setting net.%s: %w", strings.ReplaceAll(name, "/", "."), err)
		}
		out = append(out, ckpt.Sysctl{Name: name, Value: strings.TrimSuffix(string(b), "\n")})
	}
	return out, nil
}

// netRestore is one restart of a network namespace in progress.
type netRestore struct {
	nsfd, hostfd int
	// inode is the namespace's at checkpoint, and pairs the veths between
	// it and others of the image (nil: none made).
	inode        uint64
	pairs        *VethPairs
	inside, host *netlink.Conn
	// index is each image link's index in the namespace, by name.
	index map[string]int32
	// given are the image's links the caller gave, by name.
	given map[string]bool
	// undo lists, in the order done, what reverts each step.
	undo []func() error
	// beforeRun is NetworkTarget.BeforeRun.
	beforeRun func(func() error)
}

// RestoreNetwork makes rec again in the network namespace t.NS, which must
// hold only what the kernel puts in a new one. On error everything done is
// undone; on success, undo does it for a caller whose later steps failed
// (a link given goes back to the host under its own name).
func RestoreNetwork(t NetworkTarget, rec *ckpt.Network) (undo func() error, err error) {
	r, err := dialNetRestore(t.NS, t.Host)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.inode, r.pairs, r.beforeRun = t.Inode, t.Pairs, t.BeforeRun
	links := t.Links
	if err := errors.Join(checkGiven(r.host, rec, links), checkNeeded(rec, links), checkHostPeers(r.host, rec, links, t.PeerWait)); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if uerr := r.revert(); uerr != nil {
				err = fmt.Errorf("%w (and undoing it: %v)", err, uerr)
			}
		}
	}()
	if err := r.restore(rec, links, true); err != nil {
		return nil, err
	}
	return r.revert, nil
}

func dialNetRestore(nsfd, hostfd int) (*netRestore, error) {
	r := &netRestore{nsfd: nsfd, hostfd: hostfd, index: map[string]int32{}, given: map[string]bool{}}
	var err error
	if r.inside, err = sys.InNetNS(nsfd, netlink.Dial); err != nil {
		return nil, err
	}
	if r.host, err = sys.InNetNS(hostfd, netlink.Dial); err != nil {
		r.inside.Close()
		return nil, err
	}
	return r, nil
}

// close closes the sockets; revert dials its own, as it may run later.
func (r *netRestore) close() {
	r.inside.Close()
	r.host.Close()
}

// revert undoes what was done, last first, over sockets of its own (it
// may run after RestoreNetwork returned).
func (r *netRestore) revert() error {
	if len(r.undo) == 0 {
		return nil
	}
	c, err := dialNetRestore(r.nsfd, r.hostfd)
	if err != nil {
		return err
	}
	defer c.close()
	inside, host := r.inside, r.host
	r.inside, r.host = c.inside, c.host
	defer func() { r.inside, r.host = inside, host }()
	var errs []error
	for i := len(r.undo) - 1; i >= 0; i-- {
		errs = append(errs, r.undo[i]())
	}
	r.undo = nil
	return errors.Join(errs...)
}

// restore runs the steps in order; globals says whether the namespace-wide
// settings and the firewall are the image's to set.
func (r *netRestore) restore(rec *ckpt.Network, links map[string]string, globals bool) error {
	if err := r.makeLinks(rec, links); err != nil {
		return err
	}
	if err := r.setMasters(rec); err != nil {
		return err
	}
	if err := r.writeSysctls(rec, globals); err != nil {
		return err
	}
	for _, a := range additionOrder(rec.Addresses) {
		i := slices.IndexFunc(rec.Links, func(l ckpt.NetLink) bool { return l.Name == a.Link })
		if i < 0 {
			return fmt.Errorf("address %s: its link %s is not in the image", a.Prefix, a.Link)
		}
		// Without duplicate address detection, usable at once, but one
		// still being checked (tentative: a bridge with no port up never
		// finishes) is checked again.
		nodad := rec.Links[i].Kind != ckpt.LinkLoopback && a.Flags&unix.IFA_F_TENTATIVE == 0
		if err := r.addAddress(false, r.index[a.Link], a, nodad); err != nil {
			return err
		}
	}
	if err := r.setLinkState(rec); err != nil {
		return err
	}
	// A link brought up takes its MTU as its IPv6 one again
	// (ipv6/conf/LINK/mtu): the links' settings are written once more.
	if err := r.writeSysctls(rec, false); err != nil {
		return err
	}
	for _, rt := range rec.Routes {
		if err := r.addRoute(rt); err != nil {
			return err
		}
	}
	if globals {
		return r.loadFirewall(rec)
	}
	return nil
}

// additionOrder orders addresses so that each link lists them, once
// added, as the image does: IPv4 in the order added, IPv6 the latest
// first (source address selection breaks ties by that order).
func additionOrder(as []ckpt.NetAddress) []ckpt.NetAddress {
	var v4, v6 []ckpt.NetAddress
	for _, a := range as {
		if a.Prefix.Addr().Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	slices.Reverse(v6)
	return append(v4, v6...)
}

func (r *netRestore) makeLinks(rec *ckpt.Network, links map[string]string) error {
	existing, err := r.inside.Links()
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	have := map[string]netlink.Link{}
	for _, l := range existing {
		have[l.Name] = l
	}
	for _, l := range rec.Links {
		if _, done := r.index[l.Name]; done {
			continue // the inside peer of a veth made before
		}
		if hostName, ok := links[l.Name]; ok {
			if err := r.adopt(l, hostName); err != nil {
				return err
			}
			continue
		}
		if l.Peer != nil && l.Peer.Where == ckpt.PeerNamespace {
			if taken, err := r.pairs.take(r, r.inode, l); taken {
				if err != nil {
					return fmt.Errorf("link %s: %w", l.Name, err)
				}
				continue
			}
		}
		if l.Builtin {
			e, ok := have[l.Name]
			if !ok {
				return fmt.Errorf("link %s: the kernel did not make it in the new namespace", l.Name)
			}
			r.index[l.Name] = e.Index
			continue
		}
		if l.Kind == ckpt.LinkTun {
			if err := r.makeTun(l); err != nil {
				return fmt.Errorf("making link %s (tun, index %d): %w", l.Name, l.Index, err)
			}
			continue
		}
		req := &netlink.LinkRequest{Index: int32(l.Index), Name: l.Name, Kind: l.Kind, MTU: l.MTU, TxQLen: &l.TxQLen}
		if req.Address, err = parseMAC(l.MAC); err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		var peerName string
		wait := func() error { return nil }
		switch {
		case l.Kind == ckpt.LinkVeth && l.Peer != nil && l.Peer.Where == ckpt.PeerNamespace:
			if r.pairs == nil {
				return fmt.Errorf("link %s: its peer was in network namespace %d, which this restart does not make", l.Name, l.Peer.Namespace)
			}
			if req.Peer, wait, err = r.pairs.peerRequest(l); err != nil {
				return fmt.Errorf("link %s: %w", l.Name, err)
			}
		case l.Kind == ckpt.LinkVeth:
			if req.Peer, peerName, err = r.peerRequest(rec, l); err != nil {
				return fmt.Errorf("link %s: %w", l.Name, err)
			}
		}
		if err := r.inside.NewLink(req); err != nil {
			return fmt.Errorf("making link %s (%s, index %d): %w", l.Name, l.Kind, l.Index, err)
		}
		index := req.Index
		r.undo = append(r.undo, func() error { return ignoreGone(r.inside.DeleteLink(index)) })
		if err := wait(); err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		r.index[l.Name] = index
		if l.Peer != nil && l.Peer.Where == ckpt.PeerInside {
			r.index[peerName] = int32(l.Peer.Index)
		}
	}
	return nil
}

// peerRequest describes a veth's other end, inside or on the host.
func (r *netRestore) peerRequest(rec *ckpt.Network, l ckpt.NetLink) (*netlink.LinkRequest, string, error) {
	p := l.Peer
	if p == nil {
		return nil, "", fmt.Errorf("a veth without its peer in the image")
	}
	switch p.Where {
	case ckpt.PeerInside:
		i := slices.IndexFunc(rec.Links, func(o ckpt.NetLink) bool { return o.Name == p.Name })
		if i < 0 {
			return nil, "", fmt.Errorf("its peer %s is not in the image", p.Name)
		}
		o := rec.Links[i]
		mac, err := parseMAC(o.MAC)
		if err != nil {
			return nil, "", fmt.Errorf("its peer %s: %w", o.Name, err)
		}
		return &netlink.LinkRequest{Index: int32(o.Index), Name: o.Name, MTU: o.MTU, TxQLen: &o.TxQLen, Address: mac}, o.Name, nil
	case ckpt.PeerHost:
		mac, err := parseMAC(p.MAC)
		if err != nil {
			return nil, "", fmt.Errorf("its peer %s: %w", p.Name, err)
		}
		return &netlink.LinkRequest{Name: p.Name, MTU: p.MTU, TxQLen: &p.TxQLen, Address: mac, NetNSFD: &r.hostfd}, p.Name, nil
	}
	return nil, "", fmt.Errorf("its peer was in another network namespace: give it a link with --link %s=HOSTLINK", l.Name)
}

// adopt moves the host link hostName in as the image's link l.
func (r *netRestore) adopt(l ckpt.NetLink, hostName string) error {
	hl, err := r.host.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("--link %s=%s: %w", l.Name, hostName, err)
	}
	addrs, err := r.host.Addresses(unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("host addresses: %w", err)
	}
	if err := r.host.SetLink(&netlink.LinkRequest{Index: hl.Index, Name: l.Name, NetNSFD: &r.nsfd, NewIndex: int32(l.Index)}); err != nil {
		return fmt.Errorf("--link %s=%s: moving it in as %s (index %d): %w", l.Name, hostName, l.Name, l.Index, err)
	}
	index := int32(l.Index)
	r.index[l.Name] = index
	r.given[l.Name] = true
	r.undo = append(r.undo, func() error {
		back := &netlink.LinkRequest{Index: index, Name: hl.Name, NetNSFD: &r.hostfd, NewIndex: hl.Index}
		if err := r.inside.SetLink(back); err != nil {
			back.NewIndex = 0 // its index was taken since: any will do
			if err := r.inside.SetLink(back); err != nil {
				return fmt.Errorf("giving link %s back to the host as %s: %w", l.Name, hl.Name, err)
			}
		}
		now, err := r.host.LinkByName(hl.Name)
		if err != nil {
			return fmt.Errorf("link %s given back to the host: %w", hl.Name, err)
		}
		errs := []error{r.host.SetLink(&netlink.LinkRequest{Index: now.Index, MTU: hl.MTU, Flags: hl.Flags & settableLinkFlags, Change: settableLinkFlags})}
		for _, a := range addrs {
			if a.Index == hl.Index {
				a.Index = now.Index
				a.Flags &= settableAddressFlags
				errs = append(errs, r.host.AddAddress(&a))
			}
		}
		return errors.Join(errs...)
	})
	return nil
}

func (r *netRestore) setMasters(rec *ckpt.Network) error {
	for _, l := range rec.Links {
		if l.Master != "" {
			master, ok := r.index[l.Master]
			if !ok {
				return fmt.Errorf("link %s: its bridge %s is not in the image", l.Name, l.Master)
			}
			if err := r.inside.SetLink(&netlink.LinkRequest{Index: r.index[l.Name], Master: &master}); err != nil {
				return fmt.Errorf("link %s joining bridge %s: %w", l.Name, l.Master, err)
			}
		}
		if p := l.Peer; p != nil && p.Where == ckpt.PeerHost && p.Master != "" {
			if err := r.hostPeer(l, func(peer netlink.Link) error {
				m, err := r.host.LinkByName(p.Master)
				if err != nil {
					return fmt.Errorf("its bridge on the host %s: %w", p.Master, err)
				}
				return r.host.SetLink(&netlink.LinkRequest{Index: peer.Index, Master: &m.Index})
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostPeer runs fn on the host end of a veth made again (none if the
// caller gave the link).
func (r *netRestore) hostPeer(l ckpt.NetLink, fn func(netlink.Link) error) error {
	if r.given[l.Name] {
		return nil
	}
	peer, err := r.host.LinkByName(l.Peer.Name)
	if err != nil {
		return fmt.Errorf("link %s's peer on the host %s: %w", l.Name, l.Peer.Name, err)
	}
	if err := fn(peer); err != nil {
		return fmt.Errorf("link %s's peer on the host %s: %w", l.Name, l.Peer.Name, err)
	}
	return nil
}

// writeSysctls writes each setting that differs, in the image's order;
// without globals, only the links' own.
func (r *netRestore) writeSysctls(rec *ckpt.Network, globals bool) error {
	for _, s := range rec.Sysctls {
		if !globals && !isLinkSysctl(s.Name, rec) {
			continue
		}
		old, err := sys.InNetNS(r.nsfd, func() (string, error) { return writeSysctl(s.Name, s.Value) })
		if err != nil {
			return err
		}
		if old != s.Value && old != "" {
			name, old := s.Name, old
			r.undo = append(r.undo, func() error {
				_, err := sys.InNetNS(r.nsfd, func() (string, error) { return writeSysctl(name, old) })
				return ignoreGone(err)
			})
		}
	}
	return nil
}

func isLinkSysctl(name string, rec *ckpt.Network) bool {
	for _, l := range rec.Links {
		if strings.HasPrefix(name, "ipv4/conf/"+l.Name+"/") || strings.HasPrefix(name, "ipv6/conf/"+l.Name+"/") {
			return true
		}
	}
	return false
}

// writeSysctl sets /proc/sys/net/name to value if it differs, on a thread
// in the namespace, and returns what it was ("" for a stable_secret never
// set, which cannot be unset again).
func writeSysctl(name, value string) (string, error) {
	path := "/proc/sys/net/" + name
	b, err := os.ReadFile(path)
	if errors.Is(err, unix.EIO) && strings.HasSuffix(name, "/stable_secret") {
		b, err = nil, nil
	}
	if err != nil {
		return "", fmt.Errorf("setting net.%s: %w", strings.ReplaceAll(name, "/", "."), err)
	}
	old := strings.TrimSuffix(string(b), "\n")
	if old == value {
		return old, nil
	}
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return "", fmt.Errorf("setting net.%s to %q: %w", strings.ReplaceAll(name, "/", "."), value, err)
	}
	return old, nil
}

// addAddress adds an address inside, or on the host.
func (r *netRestore) addAddress(onHost bool, index int32, a ckpt.NetAddress, nodad bool) error {
	conn := func() *netlink.Conn {
		if onHost {
			return r.host
		}
		return r.inside
	}
	na := netlinkAddress(a, index, nodad)
	if err := conn().AddAddress(na); err != nil {
		return fmt.Errorf("address %s on %s: %w", a.Prefix, a.Link, err)
	}
	r.undo = append(r.undo, func() error { return ignoreGone(conn().DeleteAddress(na)) })
	return nil
}

// netlinkAddress asks for an address as recorded. With nodad (every link
// but lo, where there is none) an IPv6 address skips duplicate address
// detection: it was in use, and a socket bound to it could not be restored
// while it is tentative.
func netlinkAddress(a ckpt.NetAddress, index int32, nodad bool) *netlink.Address {
	na := &netlink.Address{
		Family: unix.AF_INET, PrefixLen: uint8(a.Prefix.Bits()), Flags: a.Flags & settableAddressFlags, Scope: a.Scope,
		Index: index, Local: a.Prefix.Addr(), Peer: a.Peer, Broadcast: a.Broadcast, Label: a.Label,
	}
	if a.Prefix.Addr().Is6() {
		na.Family = unix.AF_INET6
		if nodad {
			na.Flags |= unix.IFA_F_NODAD
		}
	}
	if a.ValidLifetime != forever || a.PreferredLifetime != forever {
		na.ValidLifetime, na.PreferredLifetime = max(a.ValidLifetime, 1), a.PreferredLifetime
	}
	return na
}

const forever = 0xffffffff

// setLinkState sets each link's MTU, queue length and flags where they
// differ, then its host peer's flags.
func (r *netRestore) setLinkState(rec *ckpt.Network) error {
	now, err := r.inside.Links()
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	byIndex := map[int32]netlink.Link{}
	for _, l := range now {
		byIndex[l.Index] = l
	}
	for _, l := range rec.Links {
		cur, ok := byIndex[r.index[l.Name]]
		if !ok {
			return fmt.Errorf("link %s is gone", l.Name)
		}
		req, undo := &netlink.LinkRequest{Index: cur.Index}, &netlink.LinkRequest{Index: cur.Index}
		changed := false
		if cur.MTU != l.MTU {
			req.MTU, undo.MTU, changed = l.MTU, cur.MTU, true
		}
		if cur.TxQLen != l.TxQLen {
			req.TxQLen, undo.TxQLen, changed = &l.TxQLen, &cur.TxQLen, true
		}
		if cur.Flags&settableLinkFlags != l.Flags&settableLinkFlags {
			req.Flags, req.Change = l.Flags&settableLinkFlags, settableLinkFlags
			undo.Flags, undo.Change = cur.Flags&settableLinkFlags, settableLinkFlags
			changed = true
		}
		if !changed {
			continue
		}
		if err := r.inside.SetLink(req); err != nil {
			return fmt.Errorf("link %s: setting flags %#x, MTU %d, queue length %d: %w", l.Name, l.Flags&settableLinkFlags, l.MTU, l.TxQLen, err)
		}
		r.undo = append(r.undo, func() error { return ignoreGone(r.inside.SetLink(undo)) })
	}
	for _, l := range rec.Links {
		p := l.Peer
		if p == nil || p.Where != ckpt.PeerHost {
			continue
		}
		if err := r.hostPeer(l, func(peer netlink.Link) error {
			for _, a := range additionOrder(p.Addresses) {
				if err := r.addAddress(true, peer.Index, a, true); err != nil {
					return err
				}
			}
			return r.host.SetLink(&netlink.LinkRequest{Index: peer.Index, Flags: p.Flags & settableLinkFlags, Change: settableLinkFlags})
		}); err != nil {
			return err
		}
	}
	return nil
}

func (r *netRestore) addRoute(rt ckpt.NetRoute) error {
	nr := &netlink.Route{
		Family: unix.AF_INET, DstLen: uint8(rt.Dst.Bits()), TOS: rt.TOS, Table: rt.Table, Protocol: rt.Protocol,
		Scope: rt.Scope, Type: rt.Type, Flags: rt.Flags & unix.RTNH_F_ONLINK, Gateway: rt.Gateway, PrefSrc: rt.PrefSrc,
		Priority: rt.Priority, Metrics: rt.Metrics, Pref: rt.Pref,
	}
	if rt.Dst.Addr().Is6() {
		nr.Family = unix.AF_INET6
	}
	if rt.Dst.Bits() > 0 {
		nr.Dst = rt.Dst.Addr()
	}
	if rt.Src.IsValid() {
		nr.Src, nr.SrcLen = rt.Src.Addr(), uint8(rt.Src.Bits())
	}
	if rt.Link != "" {
		index, ok := r.index[rt.Link]
		if !ok {
			return fmt.Errorf("route to %s: its link %s is not in the image", rt.Dst, rt.Link)
		}
		nr.OutIndex = index
	}
	if err := r.inside.AddRoute(nr); err != nil {
		return fmt.Errorf("route to %s via %s dev %s (table %d): %w", rt.Dst, rt.Gateway, rt.Link, rt.Table, err)
	}
	r.undo = append(r.undo, func() error { return ignoreGone(r.inside.DeleteRoute(nr)) })
	return nil
}

// ignoreGone treats undoing something already gone (with its link) as
// done.
func ignoreGone(err error) error {
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

func parseMAC(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("hardware address %q: %w", s, err)
	}
	return mac, nil
}

package ckpt

import "net/netip"

// Network is what a network namespace holds (record TypeNetwork; it depends
// on the namespace's record). Links refer to each other, and addresses and
// routes to links, by name, which is unique in a namespace.
type Network struct {
	Links     []NetLink    `json:"links"`
	Addresses []NetAddress `json:"addresses,omitempty"`
	Routes    []NetRoute   `json:"routes,omitempty"`
	// Sysctls are the namespace's settings under /proc/sys/net that a
	// restart writes back, globals first, then "all", then "default",
	// then each link's.
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// Nftables is the namespace's nftables tables as `nft list table`
	// prints them (crsub's own network lock left out), for `nft -f`.
	Nftables string `json:"nftables,omitempty"`
	// IPTablesLegacy and IP6TablesLegacy are the tables of the legacy
	// (x_tables) interface, as iptables-legacy-save and
	// ip6tables-legacy-save print them, when the namespace has any.
	IPTablesLegacy  string `json:"iptables_legacy,omitempty"`
	IP6TablesLegacy string `json:"ip6tables_legacy,omitempty"`
}

// Link kinds (NetLink.Kind): the kernel's link kinds crsub makes again,
// "loopback", and "" for a link it cannot make (a physical device, a kind
// it does not know), which a restart must be given (--link NAME=HOSTLINK).
const (
	LinkLoopback = "loopback"
	LinkVeth     = "veth"
	LinkBridge   = "bridge"
	LinkDummy    = "dummy"
	LinkTun      = "tun" // a tun or tap device, made through /dev/net/tun
)

// NetLink is one network interface.
type NetLink struct {
	// Index is its interface index, which a restart gives it again (sockets
	// bound to a device and IPv6 scope ids name it).
	Index int    `json:"index"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	// DriverKind is the kernel's name for a kind crsub does not make
	// ("macvlan", "vxlan"; "" for a physical device), for messages.
	DriverKind string `json:"driver_kind,omitempty"`
	// Builtin says the kernel makes the link in every new namespace (lo,
	// the fallback tunnels sit0, tunl0…): a restart finds it there.
	Builtin bool `json:"builtin,omitempty"`
	// Flags are its IFF_* flags; a restart sets IFF_UP, IFF_NOARP,
	// IFF_PROMISC, IFF_ALLMULTI and IFF_MULTICAST as they were.
	Flags  uint32 `json:"flags"`
	MTU    uint32 `json:"mtu"`
	TxQLen uint32 `json:"txqlen"`
	// MAC is its hardware address, "02:42:ac:11:00:02"; empty for lo.
	MAC string `json:"mac,omitempty"`
	// Master is the bridge, in the same namespace, it is a port of.
	Master string `json:"master,omitempty"`
	// Peer is a veth's other end.
	Peer *VethPeer `json:"peer,omitempty"`
	// Tun is a tun or tap device's settings.
	Tun *TunLink `json:"tun,omitempty"`
}

// TunLink is what a tun or tap device was made with (IFLA_TUN_*). The
// descriptions attached to it are files (TunFile).
type TunLink struct {
	// Flags are IFF_TUN or IFF_TAP, IFF_NO_PI, IFF_VNET_HDR and
	// IFF_MULTI_QUEUE.
	Flags uint16 `json:"flags"`
	// Owner and Group may use it without CAP_NET_ADMIN; -1: anyone.
	Owner int64 `json:"owner"`
	Group int64 `json:"group"`
	// Persist says it outlives its last description (TUNSETPERSIST).
	Persist bool `json:"persist,omitempty"`
}

// Where a veth's peer is (VethPeer.Where).
const (
	// PeerInside: in the same namespace; Name is another link of the
	// record, made with this one.
	PeerInside = "inside"
	// PeerHost: in the network namespace crsub was in at checkpoint; a
	// restart makes it again in crsub's, with the state recorded here.
	PeerHost = "host"
	// PeerElsewhere: in a third namespace, which the image does not
	// hold; a restart must be given the link (--link).
	PeerElsewhere = "elsewhere"
	// PeerNamespace: in another network namespace the image records
	// (Namespace, by its inode), as link Name with index Index there; a
	// restart makes the pair once, with that namespace's record of the
	// other end.
	PeerNamespace = "namespace"
)

// VethPeer is the other end of a veth.
type VethPeer struct {
	Where string `json:"where"`
	Index int    `json:"index"`
	// Namespace is the inode of the network namespace a PeerNamespace
	// peer is in.
	Namespace uint64 `json:"namespace,omitempty"`
	// The rest is known for a peer inside or on the host.
	Name   string `json:"name,omitempty"`
	Flags  uint32 `json:"flags,omitempty"`
	MTU    uint32 `json:"mtu,omitempty"`
	TxQLen uint32 `json:"txqlen,omitempty"`
	MAC    string `json:"mac,omitempty"`
	// Master and Addresses are a host peer's bridge on the host and its
	// addresses there.
	Master    string       `json:"master,omitempty"`
	Addresses []NetAddress `json:"addresses,omitempty"`
}

// NetAddress is one address of a link.
type NetAddress struct {
	Link   string       `json:"link"`
	Prefix netip.Prefix `json:"prefix"` // the address and its prefix length: "10.0.0.2/24"
	// Peer is the other end of a point-to-point link.
	Peer      netip.Addr `json:"peer,omitzero"`
	Broadcast netip.Addr `json:"broadcast,omitzero"`
	Label     string     `json:"label,omitempty"`
	// Flags are its IFA_F_* flags; Scope its RT_SCOPE_*.
	Flags uint32 `json:"flags"`
	Scope uint8  `json:"scope"`
	// ValidLifetime and PreferredLifetime are the seconds it had left
	// (4294967295: forever).
	ValidLifetime     uint32 `json:"valid_lft"`
	PreferredLifetime uint32 `json:"preferred_lft"`
}

// NetRoute is one route that neither the kernel nor a router advertisement
// made (those come back with the addresses and links).
type NetRoute struct {
	Dst     netip.Prefix `json:"dst"`
	Src     netip.Prefix `json:"src,omitzero"` // IPv6 source-specific routes
	Gateway netip.Addr   `json:"gateway,omitzero"`
	PrefSrc netip.Addr   `json:"prefsrc,omitzero"`
	// Link is the output link; empty for a route without one (blackhole).
	Link     string `json:"link,omitempty"`
	Table    uint32 `json:"table"`
	Protocol uint8  `json:"protocol"`
	Scope    uint8  `json:"scope"`
	Type     uint8  `json:"type"` // RTN_UNICAST, RTN_BLACKHOLE…
	TOS      uint8  `json:"tos,omitempty"`
	Priority uint32 `json:"priority,omitempty"`
	// Flags are RTNH_F_* (onlink).
	Flags uint32 `json:"flags,omitempty"`
	// Metrics is RTA_METRICS as the kernel gave it (RTAX_MTU, window…).
	Metrics []byte `json:"metrics,omitempty"`
	// Pref is an IPv6 route's router preference.
	Pref *uint8 `json:"pref,omitempty"`
}

// Sysctl is one setting: its path under /proc/sys/net and its value as
// read there, without the final newline.
type Sysctl struct {
	Name  string `json:"name"` // "ipv4/conf/eth0/forwarding"
	Value string `json:"value"`
}

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// printNamespaces prints the image's namespaces and what they hold: a
// network namespace's links, addresses and routes, a mount namespace's
// mounts, an IPC namespace's objects.
func printNamespaces(w io.Writer, inv *ckpt.Inventory) {
	if len(inv.Namespaces) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNamespaces:")
	for _, nv := range inv.Namespaces {
		n := nv.Namespace
		fmt.Fprintf(w, "  %s %d, made with pid %d", n.Kind, n.Inode, n.Pid)
		if n.Owner != 0 {
			fmt.Fprintf(w, ", owned by user %d", n.Owner)
		}
		switch {
		case n.User != nil:
			fmt.Fprintf(w, ": uid map %s, gid map %s, setgroups %s", idMaps(n.User.UidMap), idMaps(n.User.GidMap), n.User.Setgroups)
		case n.UTS != nil:
			fmt.Fprintf(w, ": hostname %q, domainname %q", n.UTS.Hostname, n.UTS.Domainname)
		case n.Time != nil:
			fmt.Fprintf(w, ": monotonic %+v, boottime %+v", time.Duration(n.Time.Monotonic), time.Duration(n.Time.Boottime))
		case n.IPC != nil:
			fmt.Fprintf(w, ": %d System V segment(s), %d semaphore set(s), %d message queue(s), %d setting(s)",
				len(nv.SysVShm), len(nv.SysVSem), len(nv.SysVMsg), len(n.IPC.Sysctls))
		}
		fmt.Fprintln(w)
		if n.Cgroup != nil {
			for _, r := range n.Cgroup.Roots {
				fmt.Fprintf(w, "    root %s in %s\n", r.Path, hierarchy(r.Controllers))
			}
		}
		if n.Mnt != nil {
			printMounts(w, n.Mnt, nv.MountFiles)
		}
		if nv.Network != nil {
			printNetwork(w, nv.Network)
		}
	}
}

// idMaps shows a uid or gid map as INSIDE:OUTSIDE:COUNT ranges.
func idMaps(m []ckpt.IDMap) string {
	var out []string
	for _, l := range m {
		out = append(out, fmt.Sprintf("%d:%d:%d", l.Inside, l.Outside, l.Count))
	}
	return strings.Join(out, " ")
}

func hierarchy(controllers string) string {
	if controllers == "" {
		return "the unified hierarchy"
	}
	return controllers
}

// printMounts prints a mount namespace's mounts, each after the one it is
// on, saying where a restart takes each from.
func printMounts(w io.Writer, m *ckpt.MountNamespace, files []ckpt.MountFiles) {
	stored := map[uint64]ckpt.MountFiles{}
	for _, f := range files {
		stored[f.Dev] = f
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    ID\tPARENT\tMOUNT POINT\tTYPE\tSOURCE\tROOT\tFLAGS\tPROPAGATION\tRESTORED FROM")
	for _, mt := range m.Mounts {
		flags := strings.Join(mt.Flags, ",")
		if flags == "" {
			flags = "-"
		}
		from := "made anew"
		switch f, ok := stored[mt.Dev]; {
		case mt.External != "":
			from = "external " + mt.External
		case ok:
			from = fmt.Sprintf("made anew, %d file(s), %d bytes stored", f.Files, f.Size)
		}
		path := mt.Path
		if mt.File {
			path += " (a file)"
		}
		fmt.Fprintf(tw, "    %d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mt.ID, mt.Parent, path, mt.FSType, mt.Source, mt.Root, flags, propagation(mt), from)
	}
	tw.Flush()
}

func propagation(mt ckpt.Mount) string {
	var p []string
	if mt.Shared != 0 {
		p = append(p, fmt.Sprintf("shared:%d", mt.Shared))
	}
	if mt.Master != 0 {
		p = append(p, fmt.Sprintf("master:%d", mt.Master))
	}
	if mt.Unbindable {
		p = append(p, "unbindable")
	}
	if len(p) == 0 {
		return "private"
	}
	return strings.Join(p, ",")
}

// printNetwork prints a network namespace's links, addresses, routes and
// what else its record holds.
func printNetwork(w io.Writer, n *ckpt.Network) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "    INDEX\tLINK\tKIND\tSTATE\tMTU\tADDRESS\tMASTER\tPEER")
	for _, l := range n.Links {
		kind := l.Kind
		switch {
		case kind == "" && l.DriverKind != "":
			kind = l.DriverKind + " (supplied at restart)"
		case kind == "":
			kind = "device (supplied at restart)"
		}
		state := "down"
		if l.Flags&unix.IFF_UP != 0 {
			state = "up"
		}
		fmt.Fprintf(tw, "    %d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Index, l.Name, kind, state, l.MTU, dash(l.MAC), dash(l.Master), vethPeer(l.Peer))
	}
	tw.Flush()
	if len(n.Addresses) > 0 {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "    LINK\tADDRESS\tSCOPE\tLIFETIME")
		for _, a := range n.Addresses {
			addr := a.Prefix.String()
			if a.Peer.IsValid() {
				addr += " peer " + a.Peer.String()
			}
			life := "forever"
			if a.ValidLifetime != ^uint32(0) {
				life = fmt.Sprintf("%ds", a.ValidLifetime)
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", a.Link, addr, routeScope(a.Scope), life)
		}
		tw.Flush()
	}
	if len(n.Routes) > 0 {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "    ROUTE\tTYPE\tGATEWAY\tLINK\tTABLE\tPROTOCOL\tMETRIC")
		for _, r := range n.Routes {
			gw := "-"
			if r.Gateway.IsValid() {
				gw = r.Gateway.String()
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Dst, routeType(r.Type), gw, dash(r.Link), routeTable(r.Table), routeProtocol(r.Protocol), r.Priority)
		}
		tw.Flush()
	}
	var more []string
	if len(n.Sysctls) > 0 {
		more = append(more, fmt.Sprintf("%d setting(s) under /proc/sys/net", len(n.Sysctls)))
	}
	for _, fw := range []struct{ name, rules string }{{"nftables", n.Nftables}, {"iptables-legacy", n.IPTablesLegacy}, {"ip6tables-legacy", n.IP6TablesLegacy}} {
		if fw.rules != "" {
			more = append(more, fmt.Sprintf("%s (%d lines)", fw.name, strings.Count(strings.TrimSuffix(fw.rules, "\n"), "\n")+1))
		}
	}
	if len(more) > 0 {
		fmt.Fprintf(w, "    %s\n", strings.Join(more, ", "))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// vethPeer says where a veth's other end is.
func vethPeer(p *ckpt.VethPeer) string {
	switch {
	case p == nil:
		return "-"
	case p.Where == ckpt.PeerElsewhere:
		return fmt.Sprintf("in another namespace (index %d)", p.Index)
	case p.Where == ckpt.PeerNamespace:
		return fmt.Sprintf("%s in network namespace %d", p.Name, p.Namespace)
	}
	return fmt.Sprintf("%s %s", p.Where, p.Name)
}

func routeScope(s uint8) string {
	switch s {
	case unix.RT_SCOPE_UNIVERSE:
		return "global"
	case unix.RT_SCOPE_SITE:
		return "site"
	case unix.RT_SCOPE_LINK:
		return "link"
	case unix.RT_SCOPE_HOST:
		return "host"
	case unix.RT_SCOPE_NOWHERE:
		return "nowhere"
	}
	return fmt.Sprint(s)
}

func routeType(t uint8) string {
	names := map[uint8]string{unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast", unix.RTN_ANYCAST: "anycast",
		unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit",
		unix.RTN_THROW: "throw", unix.RTN_NAT: "nat"}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprint(t)
}

func routeTable(t uint32) string {
	switch t {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return fmt.Sprint(t)
}

func routeProtocol(p uint8) string {
	names := map[uint8]string{unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot", unix.RTPROT_STATIC: "static", unix.RTPROT_RA: "ra",
		unix.RTPROT_DHCP: "dhcp"}
	if n, ok := names[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}

// namespacesOf says which of the image's namespaces a process is in
// ("net 4026531992, mnt 4026531841"), and which it makes its children in
// where they differ.
func namespacesOf(p ckpt.Process, inv *ckpt.Inventory) string {
	byRef := map[ckpt.Objref]ckpt.Namespace{}
	for _, nv := range inv.Namespaces {
		byRef[nv.Objref] = nv.Namespace
	}
	var out []string
	for _, kind := range []string{ckpt.NamespaceUser, ckpt.NamespacePid, ckpt.NamespaceTime, ckpt.NamespaceCgroup, ckpt.NamespaceUTS, ckpt.NamespaceIPC, ckpt.NamespaceNet, ckpt.NamespaceMnt} {
		for _, entry := range []string{kind, kind + "_for_children"} {
			ref, ok := p.Namespaces[entry]
			if !ok || (entry != kind && ref == p.Namespaces[kind]) {
				continue
			}
			name := entry
			if n, ok := byRef[ref]; ok {
				name = fmt.Sprintf("%s %d", entry, n.Inode)
			}
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}

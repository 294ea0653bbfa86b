package ns

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlink"
)

// What a restart is given instead of making it: a network namespace to
// join (--netns) and host links to adopt (--link NAME=HOSTLINK). Both are
// checked before anything is made, each error naming what it was given.

// NetworkTarget says where a network namespace's record is restored, with
// what the caller gives.
type NetworkTarget struct {
	// NS is an fd on the namespace to fill; Host an fd on crsub's own,
	// where the veth peers that were on the host are made again. Both stay
	// open until the undo of the restore, if any, is done.
	NS, Host int
	// Links gives, by the image's link name, a host link to use instead
	// of making one: it is moved in, renamed, and given the image's
	// addresses, routes and state (its hardware address stays its own).
	Links map[string]string
	// AsGiven takes a namespace to join that is not empty as it is,
	// without checking it against the image.
	AsGiven bool
	// PeerWait bounds how long a veth peer's host name, still taken, is
	// waited for: the namespace of the checkpointed processes goes, with
	// its links, a moment after they died.
	PeerWait time.Duration
	// Inode is the namespace's at checkpoint, by which the image's other
	// network namespaces name it, and Pairs the veths between it and them
	// (shared by the restores of one restart; nil: there are none).
	Inode uint64
	Pairs *VethPairs
	// BeforeRun, if set, takes what is done once the restart cannot fail
	// any more, before its tasks run: a legacy filter table lets in the
	// segments crsub makes on a peer's behalf (marked netlock.PassMark)
	// until then, as the image's own rules may drop them.
	BeforeRun func(func() error)
}

// checkGiven checks the links given.
func checkGiven(host *netlink.Conn, rec *ckpt.Network, links map[string]string) error {
	var names []string
	for _, l := range rec.Links {
		names = append(names, l.Name)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(links)) {
		hostName := links[name]
		if !slices.Contains(names, name) {
			errs = append(errs, fmt.Errorf("--link %s=%s: the image has no link %s (it has %s)", name, hostName, name, strings.Join(names, ", ")))
			continue
		}
		if _, err := host.LinkByName(hostName); errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("--link %s=%s: there is no link %s on the host", name, hostName, hostName))
		} else if err != nil {
			errs = append(errs, fmt.Errorf("--link %s=%s: %w", name, hostName, err))
		}
	}
	return errors.Join(errs...)
}

// checkNeeded checks that each link crsub cannot make is given.
func checkNeeded(rec *ckpt.Network, links map[string]string) error {
	var errs []error
	for _, l := range rec.Links {
		if _, ok := links[l.Name]; ok {
			continue
		}
		switch {
		case l.Kind == "":
			what := l.DriverKind
			if what == "" {
				what = "a device"
			}
			errs = append(errs, fmt.Errorf("link %s (%s) cannot be made again: give it one with --link %s=HOSTLINK", l.Name, what, l.Name))
		case l.Kind == ckpt.LinkVeth && l.Peer != nil && l.Peer.Where == ckpt.PeerElsewhere:
			errs = append(errs, fmt.Errorf("link %s: its veth peer was in another network namespace: give it a link with --link %s=HOSTLINK", l.Name, l.Name))
		}
	}
	return errors.Join(errs...)
}

// checkHostPeers checks that the host names of the veth peers to make are
// free, waiting up to wait for those still taken, and that their bridges
// are there.
func checkHostPeers(host *netlink.Conn, rec *ckpt.Network, links map[string]string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var taken, errs []error
		for _, l := range rec.Links {
			if _, ok := links[l.Name]; ok || l.Kind != ckpt.LinkVeth || l.Peer == nil || l.Peer.Where != ckpt.PeerHost {
				continue
			}
			if _, err := host.LinkByName(l.Peer.Name); err == nil {
				taken = append(taken, fmt.Errorf("link %s: its veth peer %s is on the host already (is its namespace still alive?): remove it, or give the link with --link %s=HOSTLINK", l.Name, l.Peer.Name, l.Name))
			} else if !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("link %s's peer %s: %w", l.Name, l.Peer.Name, err))
			}
			if m := l.Peer.Master; m != "" {
				if _, err := host.LinkByName(m); err != nil {
					errs = append(errs, fmt.Errorf("link %s: its veth peer %s was a port of bridge %s, which is not on the host: %w", l.Name, l.Peer.Name, m, err))
				}
			}
		}
		if len(errs) > 0 || len(taken) == 0 || time.Now().After(deadline) {
			return errors.Join(append(errs, taken...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// JoinNetwork readies a network namespace the caller gave (t.NS) for the
// image's processes. An empty one — only the links the kernel puts in a
// new namespace, with no address and no route anyone added — gets rec
// restored into it as a new one would. Any other is used as it is: it
// must hold each link of the image by name (but those given by links,
// which are moved in and restored) with the image's addresses (but IPv6
// link-local ones, the kernel's), but the loopback link, which is restored
// from the image if the namespace's is down without an address (as
// runtimes that make a namespace and its links leave it); what differs is
// an error that lists it, and nothing is changed. The links found get the
// image's MTU and state (up, if they were: matchState); with
// t.AsGiven nothing is checked (the runtime configured it). undo is as
// RestoreNetwork's.
func JoinNetwork(t NetworkTarget, rec *ckpt.Network) (undo func() error, err error) {
	r, err := dialNetRestore(t.NS, t.Host)
	if err != nil {
		return nil, err
	}
	defer r.close()
	links := t.Links
	if err := checkGiven(r.host, rec, links); err != nil {
		return nil, err
	}
	empty, err := isEmpty(r.inside)
	if err != nil {
		return nil, err
	}
	sub := rec
	if empty {
		if err := errors.Join(checkNeeded(rec, links), checkHostPeers(r.host, rec, links, t.PeerWait)); err != nil {
			return nil, err
		}
	} else {
		restored := slices.Collect(maps.Keys(links))
		if lo, err := unusedLoopback(r.inside, rec); err != nil {
			return nil, err
		} else if lo != "" {
			restored = append(restored, lo)
		}
		if !t.AsGiven {
			if err := matches(r.inside, rec, restored); err != nil {
				return nil, err
			}
		}
		sub = supplied(rec, restored)
	}
	defer func() {
		if err != nil {
			if uerr := r.revert(); uerr != nil {
				err = fmt.Errorf("%w (and undoing it: %v)", err, uerr)
			}
		}
	}()
	if err := r.restore(sub, links, empty); err != nil {
		return nil, err
	}
	// A namespace taken as given is its runtime's: its links' state and
	// routes are left as the runtime set them.
	if !empty && !t.AsGiven {
		if err := r.matchState(rec, sub); err != nil {
			return nil, err
		}
	}
	return r.revert, nil
}

// matchState gives the links of a namespace in use that were not restored
// whole (those of sub) the image's MTU, queue length, flags and the routes
// through them that they lack: a runtime makes a container's links with
// their addresses and may leave them down until the container runs, when a
// peer can no longer be answered with a reset by a port without its
// socket.
func (r *netRestore) matchState(rec, sub *ckpt.Network) error {
	have, err := r.inside.Links()
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	state := &ckpt.Network{}
	for _, l := range rec.Links {
		if slices.ContainsFunc(sub.Links, func(s ckpt.NetLink) bool { return s.Name == l.Name }) {
			continue
		}
		i := slices.IndexFunc(have, func(h netlink.Link) bool { return h.Name == l.Name })
		if i < 0 {
			continue // matches said so
		}
		r.index[l.Name] = have[i].Index
		l.Peer = nil // its peer is the caller's
		state.Links = append(state.Links, l)
	}
	if err := r.setLinkState(state); err != nil {
		return err
	}
	// Routes through a link can be added once it is up only: those of a
	// link the caller left down are the image's to add.
	for _, rt := range rec.Routes {
		if !slices.ContainsFunc(state.Links, func(l ckpt.NetLink) bool { return l.Name == rt.Link }) {
			continue
		}
		if err := r.addRoute(rt); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return nil
}

// isEmpty says whether a namespace holds no more than a new one.
func isEmpty(c *netlink.Conn) (bool, error) {
	fresh, err := newNamespaceLinks()
	if err != nil {
		return false, err
	}
	links, err := c.Links()
	if err != nil {
		return false, fmt.Errorf("links: %w", err)
	}
	for _, l := range links {
		if kind, ok := fresh[l.Name]; !ok || kind != l.Kind || l.Flags&unix.IFF_UP != 0 {
			return false, nil
		}
	}
	addrs, err := c.Addresses(unix.AF_UNSPEC)
	if err != nil || len(addrs) > 0 {
		return false, err
	}
	routes, err := c.Routes(unix.AF_UNSPEC)
	if err != nil {
		return false, err
	}
	return !slices.ContainsFunc(routes, madeByUser), nil
}

// unusedLoopback returns the name of the image's loopback link if the
// namespace's is down and has no address: never brought up, it is the
// image's to restore.
func unusedLoopback(c *netlink.Conn, rec *ckpt.Network) (string, error) {
	i := slices.IndexFunc(rec.Links, func(l ckpt.NetLink) bool { return l.Kind == ckpt.LinkLoopback })
	if i < 0 {
		return "", nil
	}
	lo, err := c.LinkByName(rec.Links[i].Name)
	if errors.Is(err, unix.ENODEV) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("link %s: %w", rec.Links[i].Name, err)
	}
	if lo.Flags&unix.IFF_UP != 0 {
		return "", nil
	}
	addrs, err := c.Addresses(unix.AF_UNSPEC)
	if err != nil {
		return "", fmt.Errorf("addresses: %w", err)
	}
	if slices.ContainsFunc(addrs, func(a netlink.Address) bool { return a.Index == lo.Index }) {
		return "", nil
	}
	return lo.Name, nil
}

// matches checks that a namespace in use holds what the image's processes
// need of it: each link not restored (given, or lo), by name, with its
// addresses (its state is the image's to set: matchState).
func matches(c *netlink.Conn, rec *ckpt.Network, restored []string) error {
	have, err := c.Links()
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	addrs, err := c.Addresses(unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	var errs []error
	for _, l := range rec.Links {
		if slices.Contains(restored, l.Name) {
			continue
		}
		i := slices.IndexFunc(have, func(h netlink.Link) bool { return h.Name == l.Name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("it has no link %s", l.Name))
			continue
		}
		for _, a := range rec.Addresses {
			if a.Prefix.Addr().IsLinkLocalUnicast() && a.Prefix.Addr().Is6() {
				continue // the kernel's, made from the hardware address the link has
			}
			if a.Link == l.Name && !slices.ContainsFunc(addrs, func(h netlink.Address) bool { return h.Index == have[i].Index && h.Prefix() == a.Prefix }) {
				errs = append(errs, fmt.Errorf("its link %s lacks address %s", l.Name, a.Prefix))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the network namespace given does not match the image: %w", errors.Join(errs...))
	}
	return nil
}

// supplied is the part of rec that concerns the links restored (given,
// or lo): theirs, with their addresses, routes and settings.
func supplied(rec *ckpt.Network, restored []string) *ckpt.Network {
	sub := &ckpt.Network{}
	for _, l := range rec.Links {
		if slices.Contains(restored, l.Name) {
			l.Master = "" // a bridge of the namespace keeps its ports as they are
			sub.Links = append(sub.Links, l)
		}
	}
	for _, a := range rec.Addresses {
		if slices.Contains(restored, a.Link) {
			sub.Addresses = append(sub.Addresses, a)
		}
	}
	for _, rt := range rec.Routes {
		if slices.Contains(restored, rt.Link) {
			sub.Routes = append(sub.Routes, rt)
		}
	}
	sub.Sysctls = rec.Sysctls // restore writes only the links' own without globals
	return sub
}

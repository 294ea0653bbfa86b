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
	// PeerWait bounds how long a veth peer's host name, still taken, is
	// waited for: the namespace of the checkpointed processes goes, with
	// its links, a moment after they died.
	PeerWait time.Duration
	// Inode is the namespace's at checkpoint, by which the image's other
	// network namespaces name it, and Pairs the veths between it and them
	// (shared by the restores of one restart; nil: there are none).
	Inode uint64
	Pairs *VethPairs
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
// which are moved in and restored) with the image's addresses, and lo up
// if it was; what differs is an error that lists it, and nothing is
// changed. undo is as RestoreNetwork's.
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
		if err := matches(r.inside, rec, links); err != nil {
			return nil, err
		}
		sub = supplied(rec, links)
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
	return r.revert, nil
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

// matches checks that a namespace in use holds what the image's processes
// need of it: each link not given by links, by name, with its addresses,
// up if it was.
func matches(c *netlink.Conn, rec *ckpt.Network, links map[string]string) error {
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
		if _, ok := links[l.Name]; ok {
			continue
		}
		i := slices.IndexFunc(have, func(h netlink.Link) bool { return h.Name == l.Name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("it has no link %s", l.Name))
			continue
		}
		if l.Flags&unix.IFF_UP != 0 && have[i].Flags&unix.IFF_UP == 0 {
			errs = append(errs, fmt.Errorf("its link %s is down, it was up", l.Name))
		}
		for _, a := range rec.Addresses {
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

// supplied is the part of rec that concerns the links given: theirs, with
// their addresses, routes and settings.
func supplied(rec *ckpt.Network, links map[string]string) *ckpt.Network {
	sub := &ckpt.Network{}
	for _, l := range rec.Links {
		if _, ok := links[l.Name]; ok {
			l.Master = "" // a bridge of the namespace keeps its ports as they are
			sub.Links = append(sub.Links, l)
		}
	}
	for _, a := range rec.Addresses {
		if _, ok := links[a.Link]; ok {
			sub.Addresses = append(sub.Addresses, a)
		}
	}
	for _, rt := range rec.Routes {
		if _, ok := links[rt.Link]; ok {
			sub.Routes = append(sub.Routes, rt)
		}
	}
	sub.Sysctls = rec.Sysctls // restore writes only the links' own without globals
	return sub
}

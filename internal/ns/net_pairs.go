package ns

import (
	"fmt"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlink"
	"github.com/crsub/crsub/internal/sys"
)

// A veth between two network namespaces of the image is made once, by the
// restore of the first of them: its other end waits, under a name of
// crsub's, in a network namespace crsub makes to hold such ends, until the
// restore of the second moves it in as that namespace's record has it
// (name, index, hardware address, MTU) and goes on with it as with its
// other links. An end nobody takes goes with the holding namespace when
// the restart ends, and with it the pair.

// VethPairs holds the ends waiting, for the restores of one restart.
type VethPairs struct {
	hold *sys.FD
	// waiting are the ends made, by the namespace and index at
	// checkpoint of the link they are to become, with their index in
	// hold.
	waiting map[vethEnd]int32
	made    int
}

// vethEnd names a link of the image: its namespace's inode and its index
// there.
type vethEnd struct {
	namespace uint64
	index     int
}

// Close lets go of the holding namespace, and of the ends still in it.
func (p *VethPairs) Close() error {
	if p == nil || p.hold == nil {
		return nil
	}
	err := p.hold.Close()
	p.hold, p.waiting = nil, nil
	return err
}

// holdingNamespace is the namespace the ends wait in, made on first use.
func (p *VethPairs) holdingNamespace() (*sys.FD, error) {
	if p.hold == nil {
		fd, err := sys.NewNetNS()
		if err != nil {
			return nil, fmt.Errorf("a network namespace to hold veth ends in: %w", err)
		}
		p.hold, p.waiting = fd, map[vethEnd]int32{}
	}
	return p.hold, nil
}

// peerRequest describes the other end of l, a link of namespace inode
// whose peer is in another namespace of the image: made in the holding
// namespace, under a name of crsub's (the peer's may be taken there by
// another's). wait registers it as waiting once the pair is made.
func (p *VethPairs) peerRequest(l ckpt.NetLink) (req *netlink.LinkRequest, wait func() error, err error) {
	hold, err := p.holdingNamespace()
	if err != nil {
		return nil, nil, err
	}
	p.made++
	name := fmt.Sprintf("crsub-veth%d", p.made)
	fd := hold.Int()
	req = &netlink.LinkRequest{Name: name, NetNSFD: &fd}
	wait = func() error {
		c, err := sys.InNetNS(hold.Int(), netlink.Dial)
		if err != nil {
			return err
		}
		defer c.Close()
		made, err := c.LinkByName(name)
		if err != nil {
			return fmt.Errorf("its peer, made as %s: %w", name, err)
		}
		p.waiting[vethEnd{l.Peer.Namespace, l.Peer.Index}] = made.Index
		return nil
	}
	return req, wait, nil
}

// take moves into the namespace of r the end waiting for its link l, if
// the restore of the peer's namespace made it: ok is false if not.
func (p *VethPairs) take(r *netRestore, inode uint64, l ckpt.NetLink) (ok bool, err error) {
	if p == nil || p.hold == nil {
		return false, nil
	}
	index, ok := p.waiting[vethEnd{inode, l.Index}]
	if !ok {
		return false, nil
	}
	c, err := sys.InNetNS(p.hold.Int(), netlink.Dial)
	if err != nil {
		return true, err
	}
	defer c.Close()
	mac, err := parseMAC(l.MAC)
	if err != nil {
		return true, err
	}
	if err := c.SetLink(&netlink.LinkRequest{Index: index, Name: l.Name, NetNSFD: &r.nsfd, NewIndex: int32(l.Index)}); err != nil {
		return true, fmt.Errorf("moving in the end made by its peer's namespace as %s (index %d): %w", l.Name, l.Index, err)
	}
	delete(p.waiting, vethEnd{inode, l.Index})
	moved := int32(l.Index)
	r.undo = append(r.undo, func() error { return ignoreGone(r.inside.DeleteLink(moved)) })
	if err := r.inside.SetLink(&netlink.LinkRequest{Index: moved, MTU: l.MTU, TxQLen: &l.TxQLen, Address: mac}); err != nil {
		return true, fmt.Errorf("its MTU, queue length and hardware address: %w", err)
	}
	r.index[l.Name] = moved
	return true, nil
}

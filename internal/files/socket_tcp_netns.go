package files

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/sys"
)

// A TCP connection in a network namespace other than crsub's is restored
// in a namespace the restart made (or was given), where nothing holds its
// packets still as the checkpoint's lock does on the host: a connection
// out of repair mode before its peer end is restored would send to a port
// without a socket and be reset. So, as on the host, before a connection
// leaves repair mode the packets to it, and to its peer if that end is
// not restored yet, are dropped (netlock.Lock in its namespace); once it
// is restored its own are let through. What is still held when every file
// is restored (the peer of a connection to a socket outside the tree) is
// let go by Close.

// heldNamespace is a network namespace where a restart holds connections.
type heldNamespace struct {
	netns    *sys.FD
	held     map[netlock.Conn]bool
	restored map[netlock.Conn]bool
}

// holdRestored holds the connection of socket ls (crsub's copy of the
// restored socket of record s) still (holdConn) until it is restored
// (unlockConn), and what is still held once every file is.
func (c *RestoreContext) holdRestored(t Target, ref ckpt.Objref, ls int, s *ckpt.Socket) {
	local, err1 := netip.ParseAddrPort(s.Local)
	peer, err2 := netip.ParseAddrPort(s.Peer)
	if err1 != nil || err2 != nil {
		return
	}
	if err := c.holdConn(ls, netlock.Conn{Local: local, Peer: peer}); err != nil && err != netlock.ErrUnavailable {
		t.Warn("cannot hold the connection's packets: its peer may see it reset", "local", s.Local, "peer", s.Peer, "err", err)
	}
	c.settle(ref, func(t Target, _ int) error {
		if err := c.releaseHeld(); err != nil {
			t.Warn("cannot let the restored connections' packets through", "err", err)
		}
		return nil
	})
}

// holdConn drops the packets of the connection conn of socket ls (crsub's
// copy of it), in ls's network namespace, and those of its peer's end
// unless that was restored already. It does nothing for a socket in
// crsub's namespace, which the checkpoint's lock holds.
func (c *RestoreContext) holdConn(ls int, conn netlock.Conn) error {
	h, err := c.heldNamespaceOf(ls)
	if h == nil || err != nil {
		return err
	}
	conns := []netlock.Conn{conn}
	if peer := (netlock.Conn{Local: conn.Peer, Peer: conn.Local}); !h.restored[peer] {
		conns = append(conns, peer)
	}
	if err := netlock.Lock(h.netns.Int(), conns); err != nil {
		return err
	}
	for _, cn := range conns {
		h.held[cn] = true
	}
	return nil
}

// releaseConn lets the packets of restored connection conn of socket ls
// through again.
func (c *RestoreContext) releaseConn(ls int, conn netlock.Conn) error {
	h, err := c.heldNamespaceOf(ls)
	if h == nil || err != nil {
		return err
	}
	h.restored[conn] = true
	if !h.held[conn] {
		return nil
	}
	delete(h.held, conn)
	return netlock.Unlock(h.netns.Int(), []netlock.Conn{conn})
}

// heldNamespaceOf returns the network namespace of socket ls as a place
// connections are held in, nil for crsub's own.
func (c *RestoreContext) heldNamespaceOf(ls int) (*heldNamespace, error) {
	ours, err := sys.InCallersNetNS(ls)
	if err != nil || ours {
		return nil, err
	}
	ino, err := socketNetNS(ls)
	if err != nil {
		return nil, err
	}
	if h := c.heldNamespaces[ino]; h != nil {
		return h, nil
	}
	netns, err := sys.SocketNetNS(ls)
	if err != nil {
		return nil, err
	}
	h := &heldNamespace{netns: netns, held: map[netlock.Conn]bool{}, restored: map[netlock.Conn]bool{}}
	if c.heldNamespaces == nil {
		c.heldNamespaces = map[uint64]*heldNamespace{}
	}
	c.heldNamespaces[ino] = h
	return h, nil
}

// releaseHeld lets go of every connection still held, and of the
// namespaces.
func (c *RestoreContext) releaseHeld() error {
	var errs []error
	for ino, h := range c.heldNamespaces {
		var conns []netlock.Conn
		for cn := range h.held {
			conns = append(conns, cn)
		}
		if err := netlock.Unlock(h.netns.Int(), conns); err != nil && err != netlock.ErrUnavailable {
			errs = append(errs, fmt.Errorf("network namespace %d: %w", ino, err))
		}
		h.netns.Close()
		delete(c.heldNamespaces, ino)
	}
	return errors.Join(errs...)
}

package criurpc

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/netlink"
)

// A runtime that wires a container to the host (LXD, LXC) asks the
// restore for veth pairs (veths, external veth[IN]:OUT): CRIU makes each
// pair with one end in the restored network namespace under the image's
// name and the other on the host under the runtime's. crsub makes the
// pair on the host, its inner end under a name of its own, and gives that
// end to the engine as the image's link (restart.Options.Links), which
// moves it in and gives it the image's addresses, routes, MTU and state.
// The host end is the runtime's to configure, left down as CRIU leaves it
// unless a bridge is named.

// hostVeths are the pairs made for one restore, by their host ends.
type hostVeths struct {
	// index is each host end's index, which does not change: the end
	// stays on the host.
	index map[string]int32
}

// makeVeths makes the pairs in crsub's network namespace and returns the
// links the engine is to adopt, by the image's names. On error nothing
// made is left.
func makeVeths(pairs []VethPair) (links map[string]string, _ *hostVeths, err error) {
	made := &hostVeths{index: map[string]int32{}}
	if len(pairs) == 0 {
		return nil, made, nil
	}
	c, err := netlink.Dial()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	defer func() {
		if err != nil {
			if rerr := made.remove(); rerr != nil {
				err = fmt.Errorf("%w (and removing the pairs made: %v)", err, rerr)
			}
		}
	}()
	links = map[string]string{}
	for i, p := range pairs {
		if _, err := c.LinkByName(p.Out); err == nil {
			return nil, nil, &RefusedError{Field: "veths", Reason: fmt.Sprintf("veth %s:%s: the host has a link %s already", p.In, p.Out, p.Out)}
		}
		// The inner end's name on the host, until the engine renames it
		// inside: unique to this crsub.
		inner := fmt.Sprintf("crsv%d.%d", os.Getpid(), i)
		if err := c.NewLink(&netlink.LinkRequest{Name: p.Out, Kind: "veth", Peer: &netlink.LinkRequest{Name: inner}}); err != nil {
			return nil, nil, fmt.Errorf("making veth %s for %s: %w", p.Out, p.In, err)
		}
		out, err := c.LinkByName(p.Out)
		if err != nil {
			return nil, nil, fmt.Errorf("veth %s just made: %w", p.Out, err)
		}
		made.index[p.Out] = out.Index
		if p.Bridge != "" {
			br, err := c.LinkByName(p.Bridge)
			if err != nil {
				return nil, nil, fmt.Errorf("veth %s: bridge %s: %w", p.Out, p.Bridge, err)
			}
			if err := c.SetLink(&netlink.LinkRequest{Index: out.Index, Master: &br.Index, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
				return nil, nil, fmt.Errorf("putting veth %s in bridge %s: %w", p.Out, p.Bridge, err)
			}
		}
		links[p.In] = inner
	}
	return links, made, nil
}

// remove deletes the pairs, both ends: wherever the inner end is (given
// back to the host by a failed restart, or gone with its namespace), the
// host end takes it along.
func (h *hostVeths) remove() error {
	if h == nil || len(h.index) == 0 {
		return nil
	}
	c, err := netlink.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	var errs []error
	for name, index := range h.index {
		if err := c.DeleteLink(index); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("removing veth %s: %w", name, err))
		}
	}
	h.index = nil
	return errors.Join(errs...)
}

// restoreLinks is what the engine adopts: the runtime's host links
// (external netdev[…]) and the inner ends of the pairs made.
func restoreLinks(given, made map[string]string, log *slog.Logger) map[string]string {
	if len(given)+len(made) == 0 {
		return nil
	}
	links := maps.Clone(given)
	if links == nil {
		links = map[string]string{}
	}
	maps.Copy(links, made)
	log.Debug("links of the host given to the restore", "links", links)
	return links
}

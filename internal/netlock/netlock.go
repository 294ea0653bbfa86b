// Package netlock holds TCP connections still while they are checkpointed
// and restored: inbound packets of a locked connection are dropped (an
// nftables set matched in a raw-priority input chain), so its peer
// retransmits instead of being answered with a reset by a port that has
// no socket between the original's end and the restore. A network
// namespace the checkpointed processes had of their own is locked whole:
// nothing goes in or out but packets marked 0xC114 (CRIU's SOCCR_MARK,
// which tools written for CRIU use to talk through its lock). The lock is
// a table in the network namespace it holds, made by the nft(8) command
// run there; without nft, locking reports ErrUnavailable.
//
// A connection's lock expires by itself after Expiry: an image that is
// never restarted must not leave its connections' addresses and ports
// dropped for good, where a later connection may use the same ones.
package netlock

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/crsub/crsub/internal/sys"
)

// Host names crsub's own network namespace where functions take an fd on
// the namespace to lock.
const Host = -1

// PassMark is the packet mark a namespace lock lets through.
const PassMark = 0xC114

// ErrUnavailable means the nft command is not installed.
var ErrUnavailable = errors.New("nft (Debian package nftables) is not installed")

// Conn is one TCP connection, as seen from the side being checkpointed.
type Conn struct{ Local, Peer netip.AddrPort }

const table = "inet crsub"

// Expiry is how long a connection stays locked unless Unlock comes first:
// about as long as a peer with data to send retransmits it (15 retries,
// tcp_retries2) before it gives the connection up, after which a lock
// holds nothing alive.
const Expiry = 15 * time.Minute

// The sets and their chain have names of their own: sets of the same
// table made without the timeout flag (by an earlier crsub) cannot take
// it, nor be replaced while that crsub's chain (input) refers to them, and
// each Lock rewrites its chain's rules: an earlier crsub locking at the
// same time rewrites input, not this one. Both chains drop what their
// sets hold.
const set4, set6, chain = "locked4", "locked6", "locked"

func (c Conn) element() (set, elem string) {
	set = set4
	if c.Local.Addr().Is6() && !c.Local.Addr().Is4In6() {
		set = set6
	}
	return set, fmt.Sprintf("%s . %d . %s . %d", c.Peer.Addr().Unmap(), c.Peer.Port(), c.Local.Addr().Unmap(), c.Local.Port())
}

// Lock starts dropping the inbound packets of conns, in the network
// namespace of netns (an fd on it, or Host), for Expiry at most.
func Lock(netns int, conns []Conn) error {
	if len(conns) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\n", table)
	fmt.Fprintf(&b, "add set %s %s { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }\n", table, set4)
	fmt.Fprintf(&b, "add set %s %s { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }\n", table, set6)
	fmt.Fprintf(&b, "add chain %s %s { type filter hook input priority -300; policy accept; }\n", table, chain)
	fmt.Fprintf(&b, "flush chain %s %s\n", table, chain)
	fmt.Fprintf(&b, "add rule %s %s ip saddr . tcp sport . ip daddr . tcp dport @%s drop\n", table, chain, set4)
	fmt.Fprintf(&b, "add rule %s %s ip6 saddr . tcp sport . ip6 daddr . tcp dport @%s drop\n", table, chain, set6)
	for _, c := range conns {
		set, elem := c.element()
		// Deleting first renews the timeout of a connection still
		// locked by an earlier checkpoint (adding keeps the old one).
		fmt.Fprintf(&b, "add element %s %s { %s timeout %ds }\n", table, set, elem, int(Expiry.Seconds()))
		fmt.Fprintf(&b, "delete element %s %s { %s }\n", table, set, elem)
		fmt.Fprintf(&b, "add element %s %s { %s timeout %ds }\n", table, set, elem, int(Expiry.Seconds()))
	}
	return nft(netns, b.String())
}

// Unlock lets the packets of conns through again. A connection that was
// not locked is no error.
func Unlock(netns int, conns []Conn) error {
	var errs []error
	for _, c := range conns {
		set, elem := c.element()
		// A connection left locked is dead: another nft transaction
		// running at the same moment is not a reason to give up at once.
		var err error
		for try := 0; try < 3; try++ {
			err = nft(netns, fmt.Sprintf("delete element %s %s { %s }\n", table, set, elem))
			if err == nil || strings.Contains(err.Error(), "No such file") {
				err = nil
				break
			}
			if err == ErrUnavailable {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LockNamespace stops every packet in and out of the network namespace of
// netns but those marked PassMark.
func LockNamespace(netns int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\n", table)
	for _, hook := range []string{"input", "output"} {
		fmt.Fprintf(&b, "add chain %s namespace-%s { type filter hook %s priority -300; policy drop; }\n", table, hook, hook)
		fmt.Fprintf(&b, "flush chain %s namespace-%s\n", table, hook)
		fmt.Fprintf(&b, "add rule %s namespace-%s meta mark %#x accept\n", table, hook, PassMark)
	}
	return nft(netns, b.String())
}

// UnlockNamespace lets the packets of the network namespace of netns
// through again. A namespace that was not locked is no error.
func UnlockNamespace(netns int) error {
	var errs []error
	for _, hook := range []string{"input", "output"} {
		err := nft(netns, fmt.Sprintf("delete chain %s namespace-%s\n", table, hook))
		if err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HoldInbound stops every packet coming into the network namespace of
// netns from outside it (on any link but lo) but those marked PassMark:
// a namespace being restored, whose peers outside must not reach a port
// before its socket is back, while what the restore sends itself inside
// it (connections made again, segments replayed) passes.
func HoldInbound(netns int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\n", table)
	fmt.Fprintf(&b, "add chain %s %s { type filter hook input priority -300; policy drop; }\n", table, inboundChain)
	fmt.Fprintf(&b, "flush chain %s %s\n", table, inboundChain)
	fmt.Fprintf(&b, "add rule %s %s meta mark %#x accept\n", table, inboundChain, PassMark)
	fmt.Fprintf(&b, "add rule %s %s iifname \"lo\" accept\n", table, inboundChain)
	return nft(netns, b.String())
}

// ReleaseInbound undoes HoldInbound. A namespace not held is no error.
func ReleaseInbound(netns int) error {
	err := nft(netns, fmt.Sprintf("delete chain %s %s\n", table, inboundChain))
	if err != nil && strings.Contains(err.Error(), "No such file") {
		return nil
	}
	return err
}

const inboundChain = "restore-inbound"

// nft runs an nft script in the network namespace of netns: started from
// a thread that entered it, nft is in it too.
func nft(netns int, script string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return ErrUnavailable
	}
	run := func() (struct{}, error) {
		cmd := exec.Command(path, "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return struct{}{}, fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return struct{}{}, nil
	}
	if netns == Host {
		_, err = run()
	} else {
		_, err = sys.InNetNS(netns, run)
	}
	return err
}

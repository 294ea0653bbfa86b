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

func (c Conn) element() (set, elem string) {
	set = "v4"
	if c.Local.Addr().Is6() && !c.Local.Addr().Is4In6() {
		set = "v6"
	}
	return set, fmt.Sprintf("%s . %d . %s . %d", c.Peer.Addr().Unmap(), c.Peer.Port(), c.Local.Addr().Unmap(), c.Local.Port())
}

// Lock starts dropping the inbound packets of conns, in the network
// namespace of netns (an fd on it, or Host).
func Lock(netns int, conns []Conn) error {
	if len(conns) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\n", table)
	fmt.Fprintf(&b, "add set %s v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n", table)
	fmt.Fprintf(&b, "add set %s v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n", table)
	fmt.Fprintf(&b, "add chain %s input { type filter hook input priority -300; policy accept; }\n", table)
	fmt.Fprintf(&b, "flush chain %s input\n", table)
	fmt.Fprintf(&b, "add rule %s input ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n", table)
	fmt.Fprintf(&b, "add rule %s input ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n", table)
	for _, c := range conns {
		set, elem := c.element()
		fmt.Fprintf(&b, "add element %s %s { %s }\n", table, set, elem)
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

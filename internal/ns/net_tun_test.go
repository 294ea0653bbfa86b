package ns

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlink"
)

func TestTunLink(t *testing.T) {
	tests := []struct {
		name string
		in   netlink.TunInfo
		want ckpt.TunLink
	}{
		{"tun, no owner", netlink.TunInfo{Owner: noID, Group: noID, Type: unix.IFF_TUN, PI: true},
			ckpt.TunLink{Flags: unix.IFF_TUN, Owner: -1, Group: -1}},
		{"tap without packet information, multi-queue, persistent, owned", netlink.TunInfo{Owner: 1000, Group: 100, Type: unix.IFF_TAP, VnetHdr: true, MQ: true, Persist: true},
			ckpt.TunLink{Flags: unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE, Owner: 1000, Group: 100, Persist: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(&tc.want, tunLink(&tc.in)); diff != "" {
				t.Errorf("tunLink (-want +got):\n%s", diff)
			}
		})
	}
}

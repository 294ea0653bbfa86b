package netlink

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseLinkTun(t *testing.T) {
	tests := []struct {
		name string
		kind string
		data func(e *Encoder)
		want *TunInfo
	}{
		{"tap, multi-queue, persistent", "tun", func(e *Encoder) {
			e.Uint32(unix.IFLA_TUN_OWNER, 1000)
			e.Uint32(unix.IFLA_TUN_GROUP, 0xffffffff)
			e.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TAP)
			e.Uint8(unix.IFLA_TUN_PI, 0)
			e.Uint8(unix.IFLA_TUN_VNET_HDR, 1)
			e.Uint8(unix.IFLA_TUN_PERSIST, 1)
			e.Uint8(unix.IFLA_TUN_MULTI_QUEUE, 1)
			e.Uint32(unix.IFLA_TUN_NUM_QUEUES, 2)
			e.Uint32(unix.IFLA_TUN_NUM_DISABLED_QUEUES, 1)
		}, &TunInfo{Owner: 1000, Group: 0xffffffff, Type: unix.IFF_TAP, VnetHdr: true, Persist: true, MQ: true, Queues: 2, DisabledQueues: 1}},
		{"tun with packet information", "tun", func(e *Encoder) {
			e.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TUN)
			e.Uint8(unix.IFLA_TUN_PI, 1)
		}, &TunInfo{Type: unix.IFF_TUN, PI: true}},
		{"another kind's data", "veth", func(e *Encoder) { e.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TUN) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Encoder
			e.Raw(make([]byte, unix.SizeofIfInfomsg))
			e.Nested(unix.IFLA_LINKINFO, func(e *Encoder) {
				e.String(unix.IFLA_INFO_KIND, tc.kind)
				e.Nested(unix.IFLA_INFO_DATA, tc.data)
			})
			l, err := ParseLink(e.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, l.Tun); diff != "" {
				t.Errorf("Tun (-want +got):\n%s", diff)
			}
		})
	}
}

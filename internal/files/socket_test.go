package files

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestChangedOptions(t *testing.T) {
	for _, tc := range []struct {
		name             string
		values, defaults map[string]int
		want             map[string]int
	}{
		{
			name:     "defaults are left out",
			values:   map[string]int{"SO_KEEPALIVE": 0, "TCP_NODELAY": 1, "SO_MARK": 0},
			defaults: map[string]int{"SO_KEEPALIVE": 0, "TCP_NODELAY": 0, "SO_MARK": 0},
			want:     map[string]int{"TCP_NODELAY": 1},
		},
		{
			name:     "no default known: kept",
			values:   map[string]int{"SO_PRIORITY": 0, "IP_TTL": 64},
			defaults: map[string]int{"IP_TTL": 64},
			want:     map[string]int{"SO_PRIORITY": 0},
		},
		{
			name:     "a changed buffer size brings its lock, even unchanged",
			values:   map[string]int{"SO_SNDBUF": 87040, "SO_RCVBUF": 131072, "SO_BUF_LOCK": 0},
			defaults: map[string]int{"SO_SNDBUF": 16384, "SO_RCVBUF": 131072, "SO_BUF_LOCK": 0},
			want:     map[string]int{"SO_SNDBUF": 87040, "SO_BUF_LOCK": 0},
		},
		{
			name:     "a lock without a changed size",
			values:   map[string]int{"SO_SNDBUF": 16384, "SO_BUF_LOCK": 3},
			defaults: map[string]int{"SO_SNDBUF": 16384, "SO_BUF_LOCK": 0},
			want:     map[string]int{"SO_BUF_LOCK": 3},
		},
		{
			name:     "a kernel without SO_BUF_LOCK",
			values:   map[string]int{"SO_RCVBUF": 32768},
			defaults: map[string]int{"SO_RCVBUF": 131072},
			want:     map[string]int{"SO_RCVBUF": 32768},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, changedOptions(tc.values, tc.defaults)); diff != "" {
				t.Errorf("changedOptions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOptionApplies(t *testing.T) {
	tcp := func(fam int) [3]int { return [3]int{fam, unix.SOCK_STREAM, unix.IPPROTO_TCP} }
	udp := func(fam int) [3]int { return [3]int{fam, unix.SOCK_DGRAM, unix.IPPROTO_UDP} }
	unixDgram := [3]int{unix.AF_UNIX, unix.SOCK_DGRAM, 0}
	for _, tc := range []struct {
		opt    string
		socket [3]int // family, type, protocol
		want   bool
	}{
		{"IP_TOS", udp(unix.AF_INET), true},
		{"IP_FREEBIND", tcp(unix.AF_INET6), true},
		{"IP_TOS", unixDgram, false},
		{"IP_MULTICAST_TTL", udp(unix.AF_INET), true},
		{"IP_MULTICAST_TTL", tcp(unix.AF_INET), false},
		{"IPV6_V6ONLY", tcp(unix.AF_INET), false},
		{"IPV6_RECVPKTINFO", udp(unix.AF_INET6), true},
		{"TCP_CORK", tcp(unix.AF_INET6), true},
		{"TCP_NODELAY", udp(unix.AF_INET), false},
		{"TCP_NODELAY", [3]int{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP}, false},
		{"TCP_NODELAY", unixDgram, false},
		{"SO_PASSCRED", unixDgram, true},
	} {
		i := slices.IndexFunc(socketOptions, func(o sockOpt) bool { return o.name == tc.opt })
		if i < 0 {
			t.Fatalf("%s is not in socketOptions", tc.opt)
		}
		if got := optionApplies(socketOptions[i], tc.socket[0], tc.socket[1], tc.socket[2]); got != tc.want {
			t.Errorf("optionApplies(%s, family/type/protocol %v) = %v, want %v", tc.opt, tc.socket, got, tc.want)
		}
	}
}

func TestSocketFilter(t *testing.T) {
	prog := []unix.SockFilter{{Code: 0x80, K: 0}, {Code: 0x25, Jt: 1, K: 64}, {Code: 0x06, K: 0xffff}, {Code: 0x06}}
	raw := []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 1, 0, 64, 0, 0, 0, 0x06, 0, 0, 0, 0xff, 0xff, 0, 0, 0x06, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name   string
		attach bool
		lock   bool
		want   []byte
	}{
		{name: "none"},
		{name: "attached", attach: true, want: raw},
		{name: "attached and locked", attach: true, lock: true, want: raw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(s)
			if tc.attach {
				if err := unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.lock {
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1); err != nil {
					t.Fatal(err)
				}
			}
			got, locked := socketFilter(s)
			if diff := cmp.Diff(tc.want, got); diff != "" || locked != tc.lock {
				t.Errorf("filter (-want +got):\n%s\nlocked %v, want %v", diff, locked, tc.lock)
			}
		})
	}
}

func TestRawSockaddrString(t *testing.T) {
	in4 := func(port uint16, a ...byte) []byte {
		return append([]byte{unix.AF_INET, 0, byte(port >> 8), byte(port)}, append(a, make([]byte, 8)...)...)
	}
	in6 := func(port uint16, a [16]byte) []byte {
		b := []byte{unix.AF_INET6, 0, byte(port >> 8), byte(port), 0, 0, 0, 0}
		return append(append(b, a[:]...), 0, 0, 0, 0)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"ipv4", in4(8880, 127, 0, 0, 1), "127.0.0.1:8880"},
		{"ipv6", in6(443, [16]byte{15: 1}), "[::1]:443"},
		{"port 0: no peer", in4(0, 10, 0, 0, 1), ""},
		{"short ipv4", in4(80, 127, 0, 0, 1)[:8], ""},
		{"short ipv6", in6(80, [16]byte{})[:20], ""},
		{"unix", []byte{unix.AF_UNIX, 0, '/', 0}, ""},
		{"empty", nil, ""},
	} {
		if got := rawSockaddrString(tc.b); got != tc.want {
			t.Errorf("%s: rawSockaddrString(% x) = %q, want %q", tc.name, tc.b, got, tc.want)
		}
	}
}

func FuzzRawSockaddrString(f *testing.F) {
	f.Add([]byte{unix.AF_INET, 0, 0x22, 0xb0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(make([]byte, 28))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := rawSockaddrString(b); s != "" {
			if _, err := netip.ParseAddrPort(s); err != nil {
				t.Fatalf("%q does not parse back: %v", s, err)
			}
		}
	})
}

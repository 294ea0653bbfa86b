package sys

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestInetSocketShutdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		how  int
		want int
	}{
		{"not shut down", -1, 0},
		{"reading", unix.SHUT_RD, 1},
		{"writing", unix.SHUT_WR, 2},
		{"both", unix.SHUT_RDWR, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(s)
			if err := unix.Connect(s, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			if tc.how >= 0 {
				if err := unix.Shutdown(s, tc.how); err != nil {
					t.Fatal(err)
				}
			}
			var st unix.Stat_t
			unix.Fstat(s, &st)
			d, err := hostDiag(t).InetSocket(unix.AF_INET, unix.IPPROTO_UDP, st.Ino)
			if err != nil {
				t.Fatal(err)
			}
			if d.Shutdown != tc.want || d.Remote.String() != "127.0.0.1:9" {
				t.Errorf("shutdown %d remote %s, want %d 127.0.0.1:9", d.Shutdown, d.Remote, tc.want)
			}
		})
	}
}

// A connection waiting in an accept queue shows as an established socket
// no file holds, on the listener's port.
func TestTCPSocketsEmbryo(t *testing.T) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	unix.Listen(l, 1)
	sa, _ := unix.Getsockname(l)
	port := sa.(*unix.SockaddrInet4).Port
	c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(c)
	if err := unix.Connect(c, sa); err != nil {
		t.Fatal(err)
	}
	socks, err := hostDiag(t).TCPSockets(unix.AF_INET, 1<<1)
	if err != nil {
		t.Fatal(err)
	}
	var client, embryo bool
	for _, s := range socks {
		if s.Local.Port() == uint16(port) && s.Inode == 0 {
			embryo = true
		}
		if s.Remote.Port() == uint16(port) && s.Inode != 0 {
			client = true
		}
	}
	if !client || !embryo {
		t.Errorf("client seen %v, waiting server end seen %v; want both", client, embryo)
	}
}

func FuzzParseInetDiag(f *testing.F) {
	f.Add([]byte{88, 0, 0, 0, 20, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 10, 0, 0, 0x22, 0xb8, 0, 80}, unix.AF_INET)
	f.Add([]byte{20, 0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, unix.AF_INET6)
	f.Fuzz(func(t *testing.T, b []byte, family int) {
		_, _, _ = parseInetDiag(b, family)
	})
}

package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/crsub/crsub/internal/netlink/nlwire"
	"golang.org/x/sys/unix"
)

func TestUnixSocketDiag(t *testing.T) {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		sv, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(sv[0])
		defer unix.Close(sv[1])
		if _, err := unix.Write(sv[1], []byte("hello")); err != nil {
			t.Fatal(err)
		}
		var st0, st1 unix.Stat_t
		unix.Fstat(sv[0], &st0)
		unix.Fstat(sv[1], &st1)
		d, err := hostDiag(t).Unix(st0.Ino)
		if err != nil {
			if err == unix.EPERM {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		if d.Type != typ || d.Peer != st1.Ino {
			t.Errorf("type %d: diag %+v, want type %d peer %d", typ, d, typ, st1.Ino)
		}
		if typ == unix.SOCK_STREAM && d.RQueue != 5 {
			t.Errorf("stream: %d bytes queued, want 5", d.RQueue)
		}
	}
}

func TestUnixSocketDiagShutdown(t *testing.T) {
	for _, tc := range []struct {
		name       string
		typ, how   int
		want, peer int // sk_shutdown of the end shut down and of its peer
	}{
		{"stream read", unix.SOCK_STREAM, unix.SHUT_RD, 1, 2},
		{"stream write", unix.SOCK_STREAM, unix.SHUT_WR, 2, 1},
		{"seqpacket both", unix.SOCK_SEQPACKET, unix.SHUT_RDWR, 3, 3},
		{"dgram read: the peer keeps its own", unix.SOCK_DGRAM, unix.SHUT_RD, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv, err := unix.Socketpair(unix.AF_UNIX, tc.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(sv[0])
			defer unix.Close(sv[1])
			if err := unix.Shutdown(sv[0], tc.how); err != nil {
				t.Fatal(err)
			}
			for i, want := range []int{tc.want, tc.peer} {
				var st unix.Stat_t
				unix.Fstat(sv[i], &st)
				d, err := hostDiag(t).Unix(st.Ino)
				if err == unix.EPERM {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				if d.Shutdown != want {
					t.Errorf("end %d: shutdown %d, want %d", i, d.Shutdown, want)
				}
			}
		})
	}
}

func FuzzParseUnixDiag(f *testing.F) {
	f.Add([]byte{40, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 2, 0, 9, 0, 0, 0}, uint64(7))
	f.Fuzz(func(t *testing.T, b []byte, ino uint64) {
		_, _ = parseUnixDiag(b, ino)
	})
}

func TestUnixSocketDiagName(t *testing.T) {
	for _, name := range []string{t.TempDir() + "/s", "@crsub-diag-name-test", "@crsub-diag-nul\x00"} {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(s)
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Fstat(s, &st)
		d, err := hostDiag(t).Unix(st.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != name {
			t.Errorf("name %q, want %q", d.Name, name)
		}
	}
}

// The file a bound socket made is found whatever became of its name, and
// tells when it was removed.
func TestUnixSocketFile(t *testing.T) {
	path := t.TempDir() + "/s"
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if _, err := UnixSocketFile(s); !errors.Is(err, unix.ENOENT) {
		t.Errorf("unbound: %v, want ENOENT", err)
	}
	if err := unix.Bind(s, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unlink(path); err != nil {
		t.Fatal(err)
	}
	f, err := UnixSocketFile(s)
	if errors.Is(err, unix.EPERM) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(f.Int(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != want.Ino || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Nlink != 0 {
		t.Errorf("inode %d, mode %#o, %d links; want inode %d, a socket, no link", st.Ino, st.Mode, st.Nlink, want.Ino)
	}
}

// hostDiag is a sock_diag connection in the test's network namespace,
// closed when the test ends.
func hostDiag(t *testing.T) *SockDiag {
	t.Helper()
	d, err := OpenSockDiag(-1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// A socket of another network namespace is unknown to sock_diag in ours,
// and known to a connection made in its own; a socket made beside it
// reaches its abstract name. One connection answers query after query,
// unix and inet alike, a failed one too.
func TestSockDiagInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	netns, err := NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	const name = "@crsub-diag-netns-test"
	s, err := InNetNS(netns.Int(), func() (int, error) {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: name}); err != nil {
			unix.Close(s)
			return -1, err
		}
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	var st unix.Stat_t
	if err := unix.Fstat(s, &st); err != nil {
		t.Fatal(err)
	}
	if _, err := hostDiag(t).Unix(st.Ino); !errors.Is(err, unix.ENOENT) {
		t.Errorf("asked in our namespace: %v, want ENOENT", err)
	}
	if ours, err := InCallersNetNS(s); err != nil || ours {
		t.Errorf("InCallersNetNS = %v, %v; want false", ours, err)
	}
	sockns, err := SocketNetNS(s)
	if err != nil {
		t.Fatal(err)
	}
	defer sockns.Close()
	d, err := OpenSockDiag(sockns.Int())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := 0; i < 3; i++ {
		got, err := d.Unix(st.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != name {
			t.Errorf("query %d: name %q, want %q", i, got.Name, name)
		}
		if _, err := d.Unix(1); err == nil {
			t.Errorf("query %d: inode 1 found", i)
		}
		if _, err := d.InetSockets(unix.AF_INET, unix.IPPROTO_UDP, ^uint32(0)); err != nil {
			t.Errorf("query %d: %v", i, err)
		}
	}
	beside, err := SocketBeside(s, unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer beside.Close()
	if err := unix.Sendto(beside.Int(), []byte("x"), 0, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Errorf("sending to %s from beside it: %v", name, err)
	}
	unrelated, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unrelated)
	if err := unix.Sendto(unrelated, []byte("x"), 0, &unix.SockaddrUnix{Name: name}); err == nil {
		t.Errorf("sending to %s from our namespace: no error", name)
	}
}

// diagMessages ends a walk on sock_diag's own terms: an error the kernel
// answers, NLMSG_DONE, a message that does not fit.
func TestDiagMessages(t *testing.T) {
	answer := nlwire.AppendMessage(nil, nlwire.Message{Type: sockDiagByFamily, Data: []byte{4, 0, 1, 0}}, 0)
	refusal := nlwire.AppendMessage(nil, nlwire.Message{Type: unix.NLMSG_ERROR, Data: binary.NativeEndian.AppendUint32(nil, ^uint32(unix.ENOENT)+1)}, 0) // -ENOENT
	done := nlwire.AppendMessage(nil, nlwire.Message{Type: unix.NLMSG_DONE, Data: make([]byte, 4)}, 0)
	for _, tc := range []struct {
		name     string
		in       []byte
		answers  int
		wantDone bool
		wantErr  string
	}{
		{name: "an answer, more to come", in: answer, answers: 1},
		{name: "answers then done", in: slices.Concat(answer, answer, done, answer), answers: 2, wantDone: true},
		{name: "refused", in: slices.Concat(answer, refusal, answer), answers: 1, wantErr: "sock_diag of the test: no such file or directory"},
		{name: "cut short", in: answer[:len(answer)-1], wantErr: "sock_diag: message of 20 bytes in 19"},
		{name: "bad attribute in an answer", in: nlwire.AppendMessage(nil, nlwire.Message{Type: sockDiagByFamily, Data: []byte{9, 0, 1, 0}}, 0), wantErr: "sock_diag: attribute of 9 bytes in 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := 0
			gotDone, err := diagMessages(tc.in, "the test", func(msg []byte) (bool, error) {
				answers++
				return false, diagAttrs(msg, func(uint16, []byte) error { return nil })
			})
			if got := fmt.Sprint(err); (err != nil || tc.wantErr != "") && got != tc.wantErr {
				t.Fatalf("err = %q, want %q", got, tc.wantErr)
			}
			if tc.wantErr == "" && (gotDone != tc.wantDone || answers != tc.answers) {
				t.Errorf("done %v after %d answers, want %v after %d", gotDone, answers, tc.wantDone, tc.answers)
			}
		})
	}
}

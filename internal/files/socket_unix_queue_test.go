package files

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// peekUnix sees each queued message with the fds and credentials it
// carries, and leaves the queue as it was.
func TestPeekUnix(t *testing.T) {
	type sent struct {
		data  string
		nfds  int
		creds bool
	}
	type seen struct {
		Data  string
		Fds   int
		Creds bool
	}
	for _, tc := range []struct {
		name     string
		typ      int
		passcred bool
		send     []sent
		want     []seen
	}{
		{name: "dgram: fds in the second message", typ: unix.SOCK_DGRAM,
			send: []sent{{data: "a"}, {data: "bb", nfds: 2}, {data: "ccc"}},
			want: []seen{{Data: "a"}, {Data: "bb", Fds: 2}, {Data: "ccc"}}},
		{name: "seqpacket with SO_PASSCRED: every message has credentials", typ: unix.SOCK_SEQPACKET, passcred: true,
			send: []sent{{data: "x", creds: true}, {data: "yy", nfds: 1}},
			want: []seen{{Data: "x", Creds: true}, {Data: "yy", Fds: 1, Creds: true}}},
		{name: "stream: a chunk ends with the bytes carrying fds", typ: unix.SOCK_STREAM,
			send: []sent{{data: "one", nfds: 1}, {data: "two"}, {data: "three"}},
			want: []seen{{Data: "one", Fds: 1}, {Data: "twothree"}}},
		{name: "stream without fds: one chunk", typ: unix.SOCK_STREAM,
			send: []sent{{data: "ab"}, {data: "cd"}},
			want: []seen{{Data: "abcd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv, err := unix.Socketpair(unix.AF_UNIX, tc.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(sv[0])
			defer unix.Close(sv[1])
			if tc.passcred {
				if err := unix.SetsockoptInt(sv[1], unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range tc.send {
				var oob []byte
				if m.nfds > 0 {
					fds := make([]int, m.nfds)
					for i := range fds {
						fds[i] = int(os.Stdin.Fd())
					}
					oob = unix.UnixRights(fds...)
				}
				if m.creds {
					oob = append(oob, unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})...)
				}
				if err := unix.Sendmsg(sv[0], []byte(m.data), oob, nil, 0); err != nil {
					t.Fatal(err)
				}
			}
			rfd := sockFd(t, sv[1])
			examine := func(local int) (*Fd, error) {
				f := &Fd{Pid: os.Getpid(), Num: local, Copy: os.NewFile(uintptr(local), "passed"), Link: procfs.FdLink{Kind: procfs.FdFile}}
				return f, unix.Fstat(local, &f.Stat)
			}
			for round := 0; round < 2; round++ { // the queue is left as it was
				msgs, err := testDumpContext(t).peekUnix(rfd, tc.typ, examine)
				if err != nil {
					t.Fatal(err)
				}
				var got []seen
				for _, m := range msgs {
					got = append(got, seen{Data: string(m.data), Fds: len(m.fds), Creds: m.creds != nil})
					for _, f := range m.fds {
						f.Copy.Close()
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Fatalf("round %d: messages (-want +got):\n%s", round, diff)
				}
			}
			if tc.send[0].nfds > 0 {
				if _, err := testDumpContext(t).peekUnix(rfd, tc.typ, nil); err == nil || !strings.Contains(err.Error(), "SCM_RIGHTS") {
					t.Errorf("peek without examine: error %v, want one about SCM_RIGHTS", err)
				}
			}
		})
	}
}

// requeue refuses a queue whose sizes or ancillary data do not match its
// bytes before sending anything.
func TestRequeueChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		typ   int
		data  string
		sizes []int
		anc   []ckpt.Ancillary
		want  string
	}{
		{"sizes short of the bytes", unix.SOCK_DGRAM, "abcd", []int{1, 2}, nil, "add up to 3, the queue holds 4"},
		{"a negative size", unix.SOCK_SEQPACKET, "ab", []int{3, -1}, nil, "a message of -1 bytes"},
		{"ancillary data past the last message", unix.SOCK_DGRAM, "ab", []int{2}, []ckpt.Ancillary{{Message: 1}}, "ancillary data of message 1 of 1"},
		{"a stream's chunks", unix.SOCK_STREAM, "abc", []int{1, 1}, nil, "add up to 2, the queue holds 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := requeue(&RestoreContext{}, nil, -1, tc.typ, []byte(tc.data), tc.sizes, tc.anc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A queue larger than a new socket's send buffer is sent whole, and the
// buffer's size and lock are as before after.
func TestRequeueLargeQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		typ   int
		sizes []int
	}{
		{"stream, 4 MiB", unix.SOCK_STREAM, []int{4 << 20}},
		{"dgram, 2000 messages of 1 KiB", unix.SOCK_DGRAM, repeat(1024, 2000)},
		{"seqpacket, 64 messages of 64 KiB", unix.SOCK_SEQPACKET, repeat(64<<10, 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv, err := unix.Socketpair(unix.AF_UNIX, tc.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(sv[0])
			defer unix.Close(sv[1])
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			before := [2]int{}
			before[0], _ = unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_SNDBUF)
			before[1], _ = unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_BUF_LOCK)
			if err := requeue(&RestoreContext{}, nil, sv[0], tc.typ, make([]byte, total), tc.sizes, nil); err != nil {
				if strings.Contains(err.Error(), "operation not permitted") {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			n, _ := unix.IoctlGetInt(sv[1], unix.SIOCINQ)
			after := [2]int{}
			after[0], _ = unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_SNDBUF)
			after[1], _ = unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_BUF_LOCK)
			if tc.typ == unix.SOCK_STREAM && n != total {
				t.Errorf("%d bytes queued, want %d", n, total)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("SO_SNDBUF, SO_BUF_LOCK (-before +after):\n%s", diff)
			}
		})
	}
}

func repeat(n, k int) []int {
	s := make([]int, k)
	for i := range s {
		s[i] = n
	}
	return s
}

package files

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/procfs"
)

// sockFd makes an Fd for one of this process's sockets, as the checkpoint
// examines a target's.
func sockFd(t *testing.T, s int) *Fd {
	t.Helper()
	d, err := unix.Dup(s)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(d, &st); err != nil {
		t.Fatal(err)
	}
	fd := &Fd{Pid: os.Getpid(), Num: s, Copy: os.NewFile(uintptr(d), "socket"), Stat: st,
		Link: procfs.FdLink{Kind: procfs.FdSocket, Inode: st.Ino}}
	t.Cleanup(func() { fd.Copy.Close() })
	if err := testDumpContext(t).ExamineSocket(fd); err != nil {
		if strings.Contains(err.Error(), "operation not permitted") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return fd
}

// testDumpContext is a DumpContext closed when the test ends.
func testDumpContext(t *testing.T) *DumpContext {
	c := &DumpContext{}
	t.Cleanup(c.Close)
	return c
}

func mustSocket(t *testing.T, family, typ int) int {
	t.Helper()
	s, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s) })
	return s
}

// A waiting connection is restorable when the tree holds its client and it
// carries nothing yet: CheckAcceptQueue notes the client, else it refuses
// the listener saying why.
func TestCheckAcceptQueue(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		typ    int
		inTree bool // the client is among the tree's sockets
		send   bool // the client sent bytes before the checkpoint
		why    string
	}{
		{name: "unix stream, client in the tree", family: unix.AF_UNIX, typ: unix.SOCK_STREAM, inTree: true},
		{name: "unix seqpacket, client in the tree", family: unix.AF_UNIX, typ: unix.SOCK_SEQPACKET, inTree: true},
		{name: "unix, client outside", family: unix.AF_UNIX, typ: unix.SOCK_STREAM, why: "is outside the checkpoint"},
		{name: "unix, client sent bytes", family: unix.AF_UNIX, typ: unix.SOCK_STREAM, inTree: true, send: true, why: "sent data"},
		{name: "tcp, client in the tree", family: unix.AF_INET, typ: unix.SOCK_STREAM, inTree: true},
		{name: "tcp, client outside", family: unix.AF_INET, typ: unix.SOCK_STREAM, why: "is outside the checkpoint"},
		{name: "tcp, client sent bytes", family: unix.AF_INET, typ: unix.SOCK_STREAM, inTree: true, send: true, why: "sent 4 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := mustSocket(t, tc.family, tc.typ)
			var sa unix.Sockaddr = &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "l")}
			if tc.family == unix.AF_INET {
				sa = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
			}
			if err := unix.Bind(l, sa); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(l, 4); err != nil {
				t.Fatal(err)
			}
			sa, err := unix.Getsockname(l)
			if err != nil {
				t.Fatal(err)
			}
			c := mustSocket(t, tc.family, tc.typ)
			if err := unix.Connect(c, sa); err != nil {
				t.Fatal(err)
			}
			if tc.send {
				if _, err := unix.Write(c, []byte("ping")); err != nil {
					t.Fatal(err)
				}
			}
			lfd, cfd := sockFd(t, l), sockFd(t, c)
			ctx := &DumpContext{Sockets: map[uint64]*Fd{lfd.Link.Inode: lfd}}
			if tc.inTree {
				ctx.Sockets[cfd.Link.Inode] = cfd
			}
			if tc.family == unix.AF_INET {
				waitQueued(t, lfd)
			}
			err = CheckAcceptQueue(ctx, lfd)
			if tc.why != "" {
				if err == nil || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("error %v, want one saying %q", err, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := sockaddrString(sa)
			got := map[uint64]string{}
			for ino, in := range ctx.Inflight {
				got[ino] = in.Peer
			}
			if diff := cmp.Diff(map[uint64]string{cfd.Link.Inode: want}, got); diff != "" {
				t.Errorf("in-flight clients (-want +got):\n%s", diff)
			}
		})
	}
}

// waitQueued waits for a TCP listener's accept queue to show its
// connection (loopback completes the handshake at once, nearly).
func waitQueued(t *testing.T, l *Fd) {
	c := testDumpContext(t)
	for i := 0; i < 100 && l.Socket.AcceptQueue == 0; i++ {
		if err := c.ExamineSocket(l); err != nil {
			t.Fatal(err)
		}
	}
	if l.Socket.AcceptQueue == 0 {
		t.Fatal("nothing in the accept queue")
	}
}

func TestAcceptQueueErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  AcceptQueueError
		want string
	}{
		{AcceptQueueError{What: "listening on 127.0.0.1:80", Waiting: 2},
			"listening on 127.0.0.1:80: 2 connection(s) wait in its accept queue, not accepted by the process; they cannot be restored"},
		{AcceptQueueError{What: "listening on /run/s", Waiting: 1, Why: "the client socket:[7] is outside the checkpoint"},
			"listening on /run/s: 1 connection(s) wait in its accept queue, not accepted by the process; they cannot be restored (the client socket:[7] is outside the checkpoint)"},
	} {
		if diff := cmp.Diff(tc.want, tc.err.Error()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

package netlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// A locked connection's inbound data is dropped, not answered; unlocked,
// it flows again (the peer's retransmission delivers it).
func TestLockUnlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	c := Conn{Local: netip.MustParseAddrPort(server.LocalAddr().String()), Peer: netip.MustParseAddrPort(server.RemoteAddr().String())}
	if err := Lock(Host, []Conn{c}); err == ErrUnavailable {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("x"))
	server.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := server.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes through the lock", n)
	}
	if err := Unlock(Host, []Conn{c}); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}

// inNamespace gives a test a new network namespace with lo up, and a
// listener in it.
func inNamespace(t *testing.T) (*sys.FD, net.Listener) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip(ErrUnavailable)
	}
	ns, err := sys.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	ln, err := sys.InNetNS(ns.Int(), func() (net.Listener, error) {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip link set lo up: %v: %s", err, out)
		}
		lc := net.ListenConfig{Control: markSocket}
		return lc.Listen(context.Background(), "tcp", "127.0.0.1:8880")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	return ns, ln
}

func markSocket(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, PassMark) })
	return errors.Join(err, serr)
}

// dial connects from inside the namespace, with or without the mark that
// passes a namespace lock, and reads the greeting.
func dial(ns *sys.FD, marked bool) error {
	_, err := sys.InNetNS(ns.Int(), func() (struct{}, error) {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		if marked {
			d.Control = markSocket
		}
		c, err := d.Dial("tcp", "127.0.0.1:8880")
		if err != nil {
			return struct{}{}, err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "hello" {
			err = fmt.Errorf("read %q", b)
		}
		return struct{}{}, err
	})
	return err
}

// A namespace locked whole lets nothing through but marked packets:
// connecting times out rather than being refused.
func TestLockNamespace(t *testing.T) {
	ns, _ := inNamespace(t)
	if err := dial(ns, false); err != nil {
		t.Fatalf("before the lock: %v", err)
	}
	if err := LockNamespace(ns.Int()); err != nil {
		t.Fatal(err)
	}
	if err := dial(ns, true); err != nil {
		t.Errorf("marked, through the lock: %v", err)
	}
	err := dial(ns, false)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("unmarked, through the lock: %v, want a timeout", err)
	}
	// The host is not locked.
	if out, err := exec.Command("nft", "list", "table", "inet", "crsub").CombinedOutput(); err == nil && strings.Contains(string(out), "namespace-input") {
		t.Errorf("the host has the namespace lock:\n%s", out)
	}
	if err := UnlockNamespace(ns.Int()); err != nil {
		t.Fatal(err)
	}
	if err := dial(ns, false); err != nil {
		t.Errorf("after unlock: %v", err)
	}
	if err := UnlockNamespace(ns.Int()); err != nil {
		t.Errorf("unlocking twice: %v", err)
	}
}

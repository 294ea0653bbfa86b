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
	// A lock whose restart never comes goes by itself.
	out, err := exec.Command("nft", "list", "set", "inet", "crsub", set4).CombinedOutput()
	if _, elem := c.element(); err != nil || !strings.Contains(string(out), elem+" timeout 15m expires") {
		t.Errorf("nft list set: %v\n%s\nwant %s with a timeout", err, out, elem)
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

// A namespace held from outside (a restore in progress) lets nothing in
// from its links but what comes on lo: connecting from another namespace
// through a veth times out, from inside it works.
func TestHoldInbound(t *testing.T) {
	inside, _ := inNamespace(t)
	outside, err := sys.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if _, err := sys.InNetNS(inside.Int(), func() (struct{}, error) {
		cmd := exec.Command("sh", "-c", "ip link add eth0 type veth peer name o0 netns /proc/self/fd/3 && "+
			"ip addr add 10.217.0.2/30 dev eth0 && ip link set eth0 up && "+
			"nsenter --net=/proc/self/fd/3 sh -c 'ip addr add 10.217.0.1/30 dev o0 && ip link set o0 up'")
		cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(outside.Int()), "outside")}
		if out, err := cmd.CombinedOutput(); err != nil {
			return struct{}{}, fmt.Errorf("%v: %s", err, out)
		}
		return struct{}{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := sys.InNetNS(inside.Int(), func() (net.Listener, error) { return net.Listen("tcp", "0.0.0.0:7200") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	dialFrom := func(ns *sys.FD, addr string) error {
		_, err := sys.InNetNS(ns.Int(), func() (struct{}, error) {
			c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
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
	if err := dialFrom(outside, "10.217.0.2:7200"); err != nil {
		t.Fatalf("from outside, before the hold: %v", err)
	}
	if err := HoldInbound(inside.Int()); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(inside, "10.217.0.2:7200"); err != nil {
		t.Errorf("from inside, held: %v", err)
	}
	err = dialFrom(outside, "10.217.0.2:7200")
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("from outside, held: %v, want a timeout", err)
	}
	if err := ReleaseInbound(inside.Int()); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(outside, "10.217.0.2:7200"); err != nil {
		t.Errorf("from outside, released: %v", err)
	}
	if err := ReleaseInbound(inside.Int()); err != nil {
		t.Errorf("releasing twice: %v", err)
	}
}

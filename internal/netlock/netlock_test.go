package netlock

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	if err := Lock([]Conn{c}); err == ErrUnavailable {
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
	if err := Unlock([]Conn{c}); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}

package files

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// A receiver verifies a TCP checksum by summing the pseudo-header and the
// segment, checksum included: the result must be zero.
func TestTCPSegmentChecksum(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"127.0.0.1:40000", "127.0.0.1:8080"},
		{"10.1.2.3:1", "192.168.77.5:65535"},
		{"[::1]:5555", "[::1]:6666"},
		{"[2001:db8::1]:443", "[fe80::1]:9"},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		seg := tcpSegment(src, dst, 0xdeadbeef, 0x01020304, tcpFlagFin|tcpFlagAck, 512)
		var pseudo []byte
		if src.Addr().Is4() {
			s, d := src.Addr().As4(), dst.Addr().As4()
			pseudo = append(append(pseudo, s[:]...), d[:]...)
			pseudo = append(pseudo, 0, 6, 0, 20)
		} else {
			s, d := src.Addr().As16(), dst.Addr().As16()
			pseudo = append(append(pseudo, s[:]...), d[:]...)
			pseudo = append(pseudo, 0, 0, 0, 20, 0, 0, 0, 6)
		}
		if c := checksum(seg, sum(pseudo)); c != 0 {
			t.Errorf("%s -> %s: checksum does not verify (residue %#x)", tc.src, tc.dst, c)
		}
		be := binary.BigEndian
		if be.Uint16(seg[0:]) != src.Port() || be.Uint16(seg[2:]) != dst.Port() || be.Uint32(seg[4:]) != 0xdeadbeef || be.Uint32(seg[8:]) != 0x01020304 || seg[13] != 0x11 || be.Uint16(seg[14:]) != 512 {
			t.Errorf("%s -> %s: header % x", tc.src, tc.dst, seg)
		}
	}
}

package sys

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestSockDiagPacket(t *testing.T) {
	s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		t.Skip(err) // needs CAP_NET_RAW
	}
	defer unix.Close(s)
	if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: 1}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct{ opt, v int }{{unix.PACKET_VERSION, unix.TPACKET_V2}, {unix.PACKET_RESERVE, 8}, {unix.PACKET_AUXDATA, 1}, {unix.PACKET_FANOUT, 13}} {
		if err := unix.SetsockoptInt(s, unix.SOL_PACKET, o.opt, o.v); err != nil {
			t.Fatalf("setsockopt %d: %v", o.opt, err)
		}
	}
	mreq := unix.PacketMreq{Ifindex: 1, Type: unix.PACKET_MR_UNICAST, Alen: 6, Address: [8]uint8{1, 2, 3, 4, 5, 6}}
	if err := unix.SetsockoptPacketMreq(s, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		t.Fatal(err)
	}
	req := unix.TpacketReq{Block_size: 4096, Block_nr: 1, Frame_size: 1024, Frame_nr: 4}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s), unix.SOL_PACKET, unix.PACKET_RX_RING, uintptr(unsafe.Pointer(&req)), unsafe.Sizeof(req), 0); e != 0 {
		t.Fatal(e)
	}
	var st unix.Stat_t
	if err := unix.Fstat(s, &st); err != nil {
		t.Fatal(err)
	}
	d, err := hostDiag(t).Packet(st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	want := PacketDiag{Type: unix.SOCK_DGRAM, Protocol: unix.ETH_P_IP, Ifindex: 1, Version: unix.TPACKET_V2, Reserve: 8,
		Flags: PacketRunning | PacketAuxdata, Mclist: []PacketMembership{{Ifindex: 1, Count: 1, Type: unix.PACKET_MR_UNICAST, Addr: []byte{1, 2, 3, 4, 5, 6}}},
		Rx: &PacketRing{BlockSize: 4096, BlockNr: 1, FrameSize: 1024, FrameNr: 4}, Fanout: 13, HasFanout: true}
	d.CopyThresh, d.Timestamp = 0, 0
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Packet (-want +got):\n%s", diff)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func FuzzParsePacketDiag(f *testing.F) {
	msg := make([]byte, 16+16+4+24+4+44)
	le := binary.LittleEndian
	le.PutUint32(msg, uint32(len(msg)))
	le.PutUint16(msg[4:], 20)
	le.PutUint32(msg[20:], 7)
	le.PutUint16(msg[32:], 28)
	le.PutUint16(msg[56:], 48)
	le.PutUint16(msg[58:], 1)
	f.Add(msg, uint64(7))
	f.Fuzz(func(t *testing.T, b []byte, ino uint64) {
		_, _, _ = parsePacketDiag(b, ino)
	})
}

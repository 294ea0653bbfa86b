package sys

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// PacketDiag is what sock_diag says of one packet socket (AF_PACKET):
// what getsockopt does not show of it.
type PacketDiag struct {
	Type int // SOCK_RAW, SOCK_DGRAM, SOCK_PACKET
	// Protocol is the protocol it receives (its bound one), in host
	// order (ETH_P_IP…); socket(2) takes it in network order.
	Protocol uint16
	// struct packet_diag_info.
	Ifindex, Version, Reserve, CopyThresh, Timestamp, Flags uint32
	// Mclist are its memberships (PACKET_ADD_MEMBERSHIP).
	Mclist []PacketMembership
	// Rx and Tx are its rings (PACKET_RX_RING, PACKET_TX_RING), nil for
	// none.
	Rx, Tx *PacketRing
	// Fanout is PACKET_FANOUT's value (id | type and flags << 16), and
	// HasFanout whether it is in a fanout group.
	Fanout    uint32
	HasFanout bool
}

// Flags of PacketDiag.Flags (PDI_*).
const (
	PacketRunning = 0x1
	PacketAuxdata = 0x2
	PacketOrigdev = 0x4
	PacketVnetHdr = 0x8
	PacketLoss    = 0x10
)

// PacketMembership is struct packet_diag_mclist: one membership, added
// Count times.
type PacketMembership struct {
	Ifindex uint32
	Count   uint32
	Type    uint16 // PACKET_MR_MULTICAST…
	Addr    []byte
}

// PacketRing is struct packet_diag_ring: a ring's geometry, as
// struct tpacket_req3 sets it.
type PacketRing struct {
	BlockSize, BlockNr, FrameSize, FrameNr, RetireTmo, SizeofPriv, Features uint32
}

const (
	packetShowInfo    = 0x1
	packetShowMclist  = 0x2
	packetShowRingCfg = 0x4
	packetShowFanout  = 0x8
	packetDiagInfo    = 0
	packetDiagMclist  = 1
	packetDiagRxRing  = 2
	packetDiagTxRing  = 3
	packetDiagFanout  = 4
	packetMclistSize  = 44 // struct packet_diag_mclist
	packetRingSize    = 28 // struct packet_diag_ring
)

// Packet finds the packet socket with inode ino among those sock_diag
// dumps (it answers packet sockets only by dumping them all).
func (d *SockDiag) Packet(ino uint64) (PacketDiag, error) {
	// struct packet_diag_req.
	req := make([]byte, 20)
	req[0] = unix.AF_PACKET
	binary.LittleEndian.PutUint32(req[8:], packetShowInfo|packetShowMclist|packetShowRingCfg|packetShowFanout)
	var found *PacketDiag
	err := d.ask(unix.NLM_F_DUMP, req, func(b []byte) (bool, error) {
		p, done, err := parsePacketDiag(b, ino)
		if p != nil {
			found = p
		}
		return done, err
	})
	if err != nil {
		return PacketDiag{}, err
	}
	if found == nil {
		return PacketDiag{}, fmt.Errorf("sock_diag lists no packet socket with inode %d", ino)
	}
	return *found, nil
}

// parsePacketDiag reads one batch of a sock_diag dump of packet sockets,
// returning the one with inode ino if it is there; done is set once the
// dump ended.
func parsePacketDiag(b []byte, ino uint64) (found *PacketDiag, done bool, err error) {
	le := binary.LittleEndian
	done, err = diagMessages(b, "packet sockets", func(msg []byte) (bool, error) {
		// struct packet_diag_msg: family, type, num (the protocol), ino,
		// cookie[2].
		if len(msg) < 16 {
			return false, fmt.Errorf("sock_diag: short packet_diag_msg")
		}
		if uint64(le.Uint32(msg[4:])) != ino {
			return false, nil
		}
		d := &PacketDiag{Type: int(msg[1]), Protocol: le.Uint16(msg[2:])}
		err := diagAttrs(msg[16:], func(typ uint16, val []byte) error {
			switch typ {
			case packetDiagInfo:
				if len(val) < 24 {
					return fmt.Errorf("sock_diag: short packet_diag_info")
				}
				d.Ifindex, d.Version, d.Reserve = le.Uint32(val), le.Uint32(val[4:]), le.Uint32(val[8:])
				d.CopyThresh, d.Timestamp, d.Flags = le.Uint32(val[12:]), le.Uint32(val[16:]), le.Uint32(val[20:])
			case packetDiagMclist:
				for m := val; len(m) >= packetMclistSize; m = m[packetMclistSize:] {
					alen := min(int(le.Uint16(m[10:])), packetMclistSize-12)
					d.Mclist = append(d.Mclist, PacketMembership{Ifindex: le.Uint32(m), Count: le.Uint32(m[4:]), Type: le.Uint16(m[8:]),
						Addr: append([]byte(nil), m[12:12+alen]...)})
				}
			case packetDiagRxRing, packetDiagTxRing:
				if len(val) < packetRingSize {
					return fmt.Errorf("sock_diag: short packet_diag_ring")
				}
				r := &PacketRing{le.Uint32(val), le.Uint32(val[4:]), le.Uint32(val[8:]), le.Uint32(val[12:]),
					le.Uint32(val[16:]), le.Uint32(val[20:]), le.Uint32(val[24:])}
				if typ == packetDiagRxRing {
					d.Rx = r
				} else {
					d.Tx = r
				}
			case packetDiagFanout:
				if len(val) >= 4 {
					d.Fanout, d.HasFanout = le.Uint32(val), true
				}
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		found = d
		return false, nil
	})
	if err != nil {
		return nil, false, err
	}
	return found, done, nil
}

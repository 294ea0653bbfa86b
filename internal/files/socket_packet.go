package files

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A packet socket (AF_PACKET: SOCK_RAW, SOCK_DGRAM, or the old
// SOCK_PACKET) is made again for its protocol, bound to its interface,
// with its socket options, its SOL_PACKET options (version, reserve,
// timestamps, auxdata…), its memberships (promiscuous mode, multicast and
// unicast addresses), its rings and its fanout group, in the order the
// kernel takes them: the version and reserve before the rings, the
// binding before the fanout. sock_diag tells what getsockopt does not
// (memberships, ring geometry). Frames queued or waiting in a ring are
// dropped, as the network may drop them; a mapping of its rings is mapped
// again on the new socket (ReservePacketRing).
var packetKind = &Kind{
	Files: []string{ckpt.FilePacket},
	Claims: func(_ *DumpContext, fd *Fd) bool {
		return fd.Socket != nil && fd.Socket.Family == unix.AF_PACKET
	},
	Dump:    dumpPacket,
	Restore: restorePacket,
}

func dumpPacket(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	s := int(fd.Copy.Fd())
	what := fmt.Sprintf("packet socket:[%d]", fd.Link.Inode)
	diag, err := c.diag(fd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	d, err := diag.Packet(fd.Link.Inode)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	// The protocol as socket(2) takes it: in network byte order.
	proto := int(d.Protocol<<8 | d.Protocol>>8)
	sock := &ckpt.Socket{Family: unix.AF_PACKET, Type: fd.Socket.Type, Protocol: proto, State: "unbound", Options: map[string]int{}}
	p := &ckpt.PacketState{Ifindex: int(d.Ifindex), Version: int(d.Version), Reserve: int(d.Reserve), Timestamp: int(d.Timestamp),
		CopyThresh: int(d.CopyThresh), Auxdata: d.Flags&sys.PacketAuxdata != 0, Origdev: d.Flags&sys.PacketOrigdev != 0,
		VnetHdr: d.Flags&sys.PacketVnetHdr != 0, Loss: d.Flags&sys.PacketLoss != 0}
	if p.Ifindex != 0 {
		// By name for people (crsub show); a restart binds by index.
		sock.State, sock.Local = "bound", fmt.Sprintf("interface %d", p.Ifindex)
		if ifi, err := net.InterfaceByIndex(p.Ifindex); err == nil {
			sock.Local = ifi.Name
		}
	}
	for _, m := range d.Mclist {
		p.Memberships = append(p.Memberships, ckpt.PacketMembership{Ifindex: int(m.Ifindex), Type: int(m.Type), Addr: m.Addr, Count: int(m.Count)})
	}
	if d.HasFanout {
		p.Fanout = &d.Fanout
	}
	for _, r := range []struct {
		from *sys.PacketRing
		to   **ckpt.PacketRing
	}{{d.Rx, &p.RxRing}, {d.Tx, &p.TxRing}} {
		if r.from != nil {
			*r.to = &ckpt.PacketRing{BlockSize: r.from.BlockSize, BlockNr: r.from.BlockNr, FrameSize: r.from.FrameSize, FrameNr: r.from.FrameNr,
				RetireTmo: r.from.RetireTmo, SizeofPriv: r.from.SizeofPriv, Features: r.from.Features}
		}
	}
	sock.Packet = p
	readSocketOptions(s, sock)
	if n, err := unix.IoctlGetInt(s, unix.SIOCINQ); err == nil && n > 0 && c.Log != nil {
		c.Log.Warn("queued frames of a packet socket are not kept", "fd", fd.Num, "bytes", n)
	}
	f := ckpt.File{Kind: ckpt.FilePacket, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Link.Inode}, Socket: sock}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

func restorePacket(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	s := f.Socket
	if s == nil || s.Packet == nil {
		return -1, fmt.Errorf("packet socket:[%d] without socket state", f.Identity.Inode)
	}
	fd, err := socketWithOptions(t, s)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	if err := setupPacket(t, fd, s); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("packet socket (protocol %#04x): %w", s.Protocol, err)
	}
	if err := mapRings(c, t, fd, f.Identity.Inode); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	if err := setNonblock(t, fd, f.Flags); err != nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

// pendingRing is a mapping of a packet socket's rings reserved in the
// process of pid until the socket is restored there.
type pendingRing struct {
	pid int
	vma ckpt.VMA
}

// ReservePacketRing holds the range of v, a mapping of a packet socket's
// rings (VMA.PacketSocket), with an inaccessible placeholder: the socket is
// restored with the process's files, after its memory, and its rings are
// mapped there then, over the placeholder.
func ReservePacketRing(c *RestoreContext, t Target, v *ckpt.VMA) error {
	if _, err := t.Syscall(unix.SYS_MMAP, v.Start, v.End-v.Start, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return fmt.Errorf("mmap of a placeholder for the rings of packet socket:[%d]: %w", v.PacketSocket, err)
	}
	c.packetRings = append(c.packetRings, pendingRing{pid: t.Pid(), vma: *v})
	return nil
}

// mapRings maps the rings of the packet socket restored as fd, inode ino
// in the image, where the process had them mapped.
func mapRings(c *RestoreContext, t Target, fd int, ino uint64) error {
	var err error
	c.packetRings = slices.DeleteFunc(c.packetRings, func(r pendingRing) bool {
		if r.pid != t.Pid() || r.vma.PacketSocket != ino || err != nil {
			return false
		}
		v := &r.vma
		flags := uint64(v.Flags&(unix.MAP_SHARED|unix.MAP_PRIVATE)) | unix.MAP_FIXED
		if _, merr := t.Syscall(unix.SYS_MMAP, v.Start, v.End-v.Start, uint64(v.Prot), flags, uint64(fd), v.Pgoff); merr != nil {
			err = fmt.Errorf("mapping its rings at %#x-%#x: %w", v.Start, v.End, merr)
			return false
		}
		return true
	})
	return err
}

// setupPacket binds a new packet socket and gives it its SOL_PACKET state.
func setupPacket(t Target, fd int, s *ckpt.Socket) error {
	p := s.Packet
	if err := bindPacket(t, fd, s.Type, p.Ifindex); err != nil {
		return err
	}
	for _, o := range []struct {
		name string
		opt  int
		v    int
	}{
		{"PACKET_VERSION", unix.PACKET_VERSION, p.Version},
		{"PACKET_RESERVE", unix.PACKET_RESERVE, p.Reserve},
		{"PACKET_TIMESTAMP", unix.PACKET_TIMESTAMP, p.Timestamp},
		{"PACKET_COPY_THRESH", unix.PACKET_COPY_THRESH, p.CopyThresh},
		{"PACKET_AUXDATA", unix.PACKET_AUXDATA, b2i(p.Auxdata)},
		{"PACKET_ORIGDEV", unix.PACKET_ORIGDEV, b2i(p.Origdev)},
		{"PACKET_VNET_HDR", unix.PACKET_VNET_HDR, b2i(p.VnetHdr)},
		{"PACKET_LOSS", unix.PACKET_LOSS, b2i(p.Loss)},
	} {
		if o.v == 0 {
			continue // a new socket's
		}
		if err := setsockoptInt(t, fd, unix.SOL_PACKET, o.opt, o.v); err != nil {
			return fmt.Errorf("setsockopt %s=%d: %w", o.name, o.v, err)
		}
	}
	for _, m := range p.Memberships {
		mreq, err := packetMreq(m)
		if err != nil {
			return err
		}
		for range max(m.Count, 1) {
			if err := setsockoptBytes(t, fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
				return fmt.Errorf("setsockopt PACKET_ADD_MEMBERSHIP (interface %d, type %d): %w", m.Ifindex, m.Type, err)
			}
		}
	}
	for _, r := range []struct {
		name string
		opt  int
		ring *ckpt.PacketRing
	}{{"PACKET_RX_RING", unix.PACKET_RX_RING, p.RxRing}, {"PACKET_TX_RING", unix.PACKET_TX_RING, p.TxRing}} {
		if r.ring == nil {
			continue
		}
		if err := setsockoptBytes(t, fd, unix.SOL_PACKET, r.opt, tpacketReq3(r.ring)); err != nil {
			return fmt.Errorf("setsockopt %s: %w", r.name, err)
		}
	}
	if p.Fanout != nil {
		if err := setsockoptInt(t, fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(*p.Fanout)); err != nil {
			return fmt.Errorf("setsockopt PACKET_FANOUT=%#x: %w", *p.Fanout, err)
		}
	}
	return nil
}

// bindPacket binds a packet socket to interface ifindex (0: none, as a
// new socket is) keeping its protocol: a SOCK_PACKET socket by the
// interface's name (struct sockaddr_pkt), others by index (struct
// sockaddr_ll).
func bindPacket(t Target, fd, typ, ifindex int) error {
	if ifindex == 0 {
		return nil
	}
	var raw []byte
	if typ == unix.SOCK_PACKET {
		ifi, err := net.InterfaceByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("the interface it was bound to: %w", err)
		}
		if len(ifi.Name) >= 14 {
			return fmt.Errorf("interface name %q too long for struct sockaddr_pkt", ifi.Name)
		}
		raw = make([]byte, 16)
		binary.LittleEndian.PutUint16(raw, unix.AF_PACKET)
		copy(raw[2:], ifi.Name)
	} else {
		raw = make([]byte, 20) // struct sockaddr_ll, protocol 0: the socket's own
		binary.LittleEndian.PutUint16(raw, unix.AF_PACKET)
		binary.LittleEndian.PutUint32(raw[4:], uint32(ifindex))
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw))); err != nil {
		return fmt.Errorf("bind to interface %d: %w", ifindex, err)
	}
	return nil
}

// packetMreq encodes struct packet_mreq, with room for a longer address
// (the kernel takes up to struct packet_mreq_max's 32 bytes).
func packetMreq(m ckpt.PacketMembership) ([]byte, error) {
	if len(m.Addr) > 32 {
		return nil, fmt.Errorf("membership address of %d bytes", len(m.Addr))
	}
	b := make([]byte, 8+max(8, len(m.Addr)))
	binary.LittleEndian.PutUint32(b, uint32(m.Ifindex))
	binary.LittleEndian.PutUint16(b[4:], uint16(m.Type))
	binary.LittleEndian.PutUint16(b[6:], uint16(len(m.Addr)))
	copy(b[8:], m.Addr)
	return b, nil
}

// tpacketReq3 encodes struct tpacket_req3, which every ring version takes
// (the first fields are struct tpacket_req's).
func tpacketReq3(r *ckpt.PacketRing) []byte {
	b := make([]byte, 28)
	for i, v := range []uint32{r.BlockSize, r.BlockNr, r.FrameSize, r.FrameNr, r.RetireTmo, r.SizeofPriv, r.Features} {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// setsockoptBytes sets an option that is a struct on fd inside the target.
func setsockoptBytes(t Target, fd, level, opt int, b []byte) error {
	addr, err := t.Scratch(b)
	if err != nil {
		return err
	}
	_, err = t.Syscall(unix.SYS_SETSOCKOPT, uint64(fd), uint64(level), uint64(opt), addr, uint64(len(b)))
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

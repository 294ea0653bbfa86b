package checkpoint

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/procfs"
)

// An AIO ring (io_setup(2)) is memory the kernel writes completed events
// into, mapped from a file of its own that cannot be opened: maps shows
// "/[aio] (deleted)", and its map_files entry has no file type. Its pages
// are stored as shared memory's are; the kernel's part of the context
// (its tail, the requests it allows) is made again at restart from what
// the ring's header says (restart/aio.go). Requests still in flight are
// not seen: the kernel shows them nowhere.

// aioRingPath is how maps names an AIO ring, " (deleted)" cut off.
const aioRingPath = "/[aio]"

// The ring's header, struct aio_ring: id, nr, head, tail, magic,
// compat_features, incompat_features, header_length (32-bit each), then
// nr struct io_event of 32 bytes.
const (
	aioRingHeaderSize = 32
	aioEventSize      = 32
	aioRingMagic      = 0xa10a10a1
)

// classifyAIORing makes m, a shared mapping of a deleted "/[aio]", an AIO
// ring if it is one: its map_files entry has no file type (a deleted
// file of that name has one), and its header is one the kernel writes.
func classifyAIORing(pid int, m *procfs.Mapping) error {
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End)
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != 0 {
		return nil // a file: its own kind finds out more
	}
	hdr := make([]byte, aioRingHeaderSize)
	if err := readRemote(pid, hdr, []unix.RemoteIovec{{Base: uintptr(m.Start), Len: len(hdr)}}); err != nil {
		return fmt.Errorf("AIO ring at %#x-%#x: its header: %w", m.Start, m.End, err)
	}
	if err := checkAIORing(hdr, m.End-m.Start); err != nil {
		return fmt.Errorf("AIO ring at %#x-%#x: %w", m.Start, m.End, err)
	}
	m.Kind = procfs.KindAIO
	return nil
}

// checkAIORing refuses a ring header a restart could not make again: one
// the kernel did not write as it does today, or whose head the program
// moved outside the ring.
func checkAIORing(hdr []byte, size uint64) error {
	le := binary.LittleEndian
	nr, head, tail := le.Uint32(hdr[4:]), le.Uint32(hdr[8:]), le.Uint32(hdr[12:])
	magic, incompat, hlen := le.Uint32(hdr[16:]), le.Uint32(hdr[24:]), le.Uint32(hdr[28:])
	switch {
	case magic != aioRingMagic || hlen != aioRingHeaderSize || incompat != 0:
		return fmt.Errorf("unknown ring header (magic %#x, header %d bytes, incompatible features %#x)", magic, hlen, incompat)
	case uint64(nr) != (size-aioRingHeaderSize)/aioEventSize:
		return fmt.Errorf("%d events do not fill its %d bytes", nr, size)
	case head >= nr || tail >= nr:
		return fmt.Errorf("head %d or tail %d outside its %d events", head, tail, nr)
	}
	return nil
}

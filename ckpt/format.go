package ckpt

import (
	"encoding/binary"
	"hash/crc32"
)

// Magic opens every image.
const Magic = "CRSUBIMG"

// Format version. A reader accepts any minor version of its major version,
// skipping record types it does not know; it refuses another major version.
const (
	MajorVersion = 1
	MinorVersion = 0
)

const (
	preambleSize     = 16
	recordHeaderSize = 40
	payloadCRCSize   = 4

	// MaxMetaSize bounds a record's metadata so that a forged length cannot
	// make a reader allocate without limit. Page data never travels as
	// metadata, so real records stay far below it.
	MaxMetaSize = 64 << 20
	// MaxDeps bounds a record's dependency list for the same reason.
	MaxDeps = 1 << 16
)

// Record flags.
const (
	flagPayload = 1 << 0
	knownFlags  = flagPayload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordHeader is the fixed part in front of every record, little-endian:
//
//	0  u32 type
//	4  u32 flags
//	8  u64 objref (0: none)
//	16 u32 number of dependencies
//	20 u32 metadata length
//	24 u64 payload length
//	32 u32 CRC32C of bytes 0..31, the dependency list and the metadata
//	36 u32 reserved, zero
type recordHeader struct {
	Type       Type
	Flags      uint32
	Objref     Objref
	NumDeps    uint32
	MetaLen    uint32
	PayloadLen uint64
	CRC        uint32
}

func (h *recordHeader) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(h.Type))
	le.PutUint32(b[4:], h.Flags)
	le.PutUint64(b[8:], uint64(h.Objref))
	le.PutUint32(b[16:], h.NumDeps)
	le.PutUint32(b[20:], h.MetaLen)
	le.PutUint64(b[24:], h.PayloadLen)
	le.PutUint32(b[32:], h.CRC)
	le.PutUint32(b[36:], 0)
}

func (h *recordHeader) unmarshal(b []byte) {
	le := binary.LittleEndian
	h.Type = Type(le.Uint32(b[0:]))
	h.Flags = le.Uint32(b[4:])
	h.Objref = Objref(le.Uint64(b[8:]))
	h.NumDeps = le.Uint32(b[16:])
	h.MetaLen = le.Uint32(b[20:])
	h.PayloadLen = le.Uint64(b[24:])
	h.CRC = le.Uint32(b[32:])
}

// headerCRC covers the fixed header (without its CRC field), the
// dependencies and the metadata.
func headerCRC(fixed []byte, deps []byte, meta []byte) uint32 {
	c := crc32.Update(0, castagnoli, fixed[:32])
	c = crc32.Update(c, castagnoli, deps)
	return crc32.Update(c, castagnoli, meta)
}

func encodeDeps(deps []Objref) []byte {
	b := make([]byte, 8*len(deps))
	for i, d := range deps {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(d))
	}
	return b
}

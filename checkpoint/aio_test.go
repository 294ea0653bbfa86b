package checkpoint

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestCheckAIORing(t *testing.T) {
	header := func(nr, head, tail, magic, incompat, hlen uint32) []byte {
		b := make([]byte, aioRingHeaderSize)
		le := binary.LittleEndian
		for i, v := range []uint32{7, nr, head, tail, magic, 1, incompat, hlen} {
			le.PutUint32(b[4*i:], v)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		hdr  []byte
		size uint64
		want string // "" for no error
	}{
		{"one page", header(127, 3, 5, aioRingMagic, 0, 32), 4096, ""},
		{"two pages, gone round", header(255, 200, 45, aioRingMagic, 0, 32), 8192, ""},
		{"wrong magic", header(127, 0, 0, 0x1234, 0, 32), 4096, "unknown ring header"},
		{"incompatible features", header(127, 0, 0, aioRingMagic, 1, 32), 4096, "unknown ring header"},
		{"other header size", header(127, 0, 0, aioRingMagic, 0, 64), 4096, "unknown ring header"},
		{"events do not fill it", header(100, 0, 0, aioRingMagic, 0, 32), 4096, "do not fill"},
		{"head outside", header(127, 127, 0, aioRingMagic, 0, 32), 4096, "outside"},
		{"tail outside", header(127, 0, 300, aioRingMagic, 0, 32), 4096, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAIORing(tc.hdr, tc.size)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkAIORing: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("checkAIORing: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func FuzzCheckAIORing(f *testing.F) {
	f.Add(make([]byte, aioRingHeaderSize), uint64(4096))
	f.Fuzz(func(t *testing.T, hdr []byte, size uint64) {
		if len(hdr) < aioRingHeaderSize || size < aioRingHeaderSize {
			return
		}
		if checkAIORing(hdr, size) == nil {
			le := binary.LittleEndian
			nr := le.Uint32(hdr[4:])
			if le.Uint32(hdr[8:]) >= nr || le.Uint32(hdr[12:]) >= nr {
				t.Fatalf("accepted head or tail outside %d events", nr)
			}
		}
	})
}

package procfs

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Auxiliary vector types from <elf.h>; x/sys/unix has none of them.
const (
	atPagesz      = 6
	atUID         = 11
	atSysinfoEhdr = 33
)

func auxvBytes(pairs ...uint64) []byte {
	b := make([]byte, 8*len(pairs))
	for i, v := range pairs {
		binary.NativeEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func TestParseAuxv(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []AuxEntry
		wantErr string
	}{
		{"two entries", auxvBytes(6, 4096, 25, 0x7ffd1fb798e9, 0, 0), []AuxEntry{{6, 4096}, {25, 0x7ffd1fb798e9}}, ""},
		{"stops at AT_NULL", auxvBytes(6, 4096, 0, 0, 7, 7), []AuxEntry{{6, 4096}}, ""},
		{"only AT_NULL", auxvBytes(0, 0), nil, ""},
		{"AT_NULL with a value", auxvBytes(0, 5), nil, ""},
		{"empty", nil, nil, "no AT_NULL entry in 0 bytes"},
		{"no terminator", auxvBytes(6, 4096), nil, "no AT_NULL entry in 16 bytes"},
		{"truncated pair", auxvBytes(6, 4096, 0)[:20], nil, "no AT_NULL entry in 20 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuxv(tc.in)
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseAuxv mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAuxvTestdata(t *testing.T) {
	got, err := ParseAuxv(readTestdata(t, "auxv-cp.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 22 || got[0].Type != atSysinfoEhdr {
		t.Errorf("got %d entries starting %+v", len(got), got[0])
	}
}

func TestReadAuxvSelf(t *testing.T) {
	es, raw, err := ReadAuxv(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/auxv")
	if err != nil || !bytes.Equal(raw, self) {
		t.Errorf("raw auxv differs from /proc/self/auxv (%v)", err)
	}
	vals := map[uint64]uint64{}
	for _, e := range es {
		vals[e.Type] = e.Value
	}
	if vals[atPagesz] != uint64(os.Getpagesize()) || vals[atUID] != uint64(os.Getuid()) {
		t.Errorf("AT_PAGESZ %d, AT_UID %d", vals[atPagesz], vals[atUID])
	}
	if vals[atSysinfoEhdr] == 0 {
		t.Error("no vDSO address")
	}
}

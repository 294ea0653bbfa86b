package procfs

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

const smapsStack = `7fffd0e23000-7fffd0e44000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                  20 kB
Pss:                  20 kB
Pss_Dirty:            20 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:        20 kB
Referenced:           20 kB
Anonymous:            20 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:      2048 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  4 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           1
ProtectionKey:         0
VmFlags: rd wr mr mw me gd ac 
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Size:                  4 kB
VmFlags: ex 
`

func TestParseSmaps(t *testing.T) {
	const kB = 1024
	tests := []struct {
		name    string
		in      string
		want    []SmapsEntry
		wantErr string
	}{{
		name: "stack and vsyscall",
		in:   smapsStack,
		want: []SmapsEntry{{
			Mapping: Mapping{Start: 0x7fffd0e23000, End: 0x7fffd0e44000, Prot: ProtRead | ProtWrite, Path: "[stack]", Kind: KindStack},
			Size:    132 * kB, KernelPageSize: 4 * kB, MMUPageSize: 4 * kB, Rss: 20 * kB, Pss: 20 * kB, Anonymous: 20 * kB,
			AnonHugePages: 2048 * kB, Swap: 4 * kB, THPEligible: true,
			VmFlags: VmFlags{VmRead, VmWrite, VmMayRead, VmMayWrite, VmMayExec, VmGrowsDown, VmAccount},
			Fields: map[string]uint64{
				"Size": 132 * kB, "KernelPageSize": 4 * kB, "MMUPageSize": 4 * kB, "Rss": 20 * kB, "Pss": 20 * kB,
				"Pss_Dirty": 20 * kB, "Shared_Clean": 0, "Shared_Dirty": 0, "Private_Clean": 0, "Private_Dirty": 20 * kB,
				"Referenced": 20 * kB, "Anonymous": 20 * kB, "KSM": 0, "LazyFree": 0, "AnonHugePages": 2048 * kB,
				"ShmemPmdMapped": 0, "FilePmdMapped": 0, "Shared_Hugetlb": 0, "Private_Hugetlb": 0, "Swap": 4 * kB,
				"SwapPss": 0, "Locked": 0, "THPeligible": 1, "ProtectionKey": 0,
			},
		}, {
			Mapping: Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: ProtExec, Path: "[vsyscall]", Kind: KindVsyscall},
			Size:    4 * kB, VmFlags: VmFlags{VmExec}, Fields: map[string]uint64{"Size": 4 * kB},
		}},
	},
		{name: "empty", in: ""},
		{name: "attribute first", in: "Size: 4 kB\n", wantErr: "line 1: attribute \"Size:\" before any mapping"},
		{name: "bad header", in: "zz-1000 rw-p 00000000 00:00 0\n", wantErr: "line 1: start address"},
		{name: "bad number", in: "1000-2000 rw-p 00000000 00:00 0\nRss: x kB\n", wantErr: "line 2: field Rss"},
		{name: "bad unit", in: "1000-2000 rw-p 00000000 00:00 0\nRss: 4 MB\n", wantErr: "unknown unit"},
		{name: "overflow", in: "1000-2000 rw-p 00000000 00:00 0\nRss: 18446744073709551615 kB\n", wantErr: "out of range"},
		{name: "repeated", in: "1000-2000 rw-p 00000000 00:00 0\nRss: 4 kB\nRss: 4 kB\n", wantErr: "repeated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSmaps(strings.NewReader(tc.in))
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseSmaps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSmapsTestdata(t *testing.T) {
	for name, b := range testdataFiles(t, "smaps-") {
		t.Run(name, func(t *testing.T) {
			es, err := ParseSmaps(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if want := bytes.Count(b, []byte("VmFlags:")); len(es) != want {
				t.Errorf("%d entries, want %d", len(es), want)
			}
			for _, e := range es {
				if e.Size != e.Mapping.Size() {
					t.Errorf("%#x: Size %d, range says %d", e.Start, e.Size, e.Mapping.Size())
				}
				if e.Kind == KindStack && !e.VmFlags.Has(VmGrowsDown) {
					t.Errorf("[stack] without gd: %v", e.VmFlags)
				}
			}
		})
	}
}

func TestReadSmapsFlags(t *testing.T) {
	ps := os.Getpagesize()
	tests := []struct {
		name   string
		flags  int // extra mmap flags
		advice int // madvise advice, 0 for none
		want   VmFlag
	}{
		{"dontdump", 0, unix.MADV_DONTDUMP, VmDontDump},
		{"wipeonfork", 0, unix.MADV_WIPEONFORK, VmWipeOnFork},
		{"hugepage", 0, unix.MADV_HUGEPAGE, VmHugePage},
		{"nohugepage", 0, unix.MADV_NOHUGEPAGE, VmNoHugePage},
		{"dontfork", 0, unix.MADV_DONTFORK, VmDontCopy},
		{"growsdown", unix.MAP_GROWSDOWN, 0, VmGrowsDown},
		{"random", 0, unix.MADV_RANDOM, VmRandRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem, err := unix.Mmap(-1, 0, 4*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(mem)
			if tc.advice != 0 {
				if err := unix.Madvise(mem, tc.advice); err != nil {
					t.Fatal(err)
				}
			}
			mem[0] = 1
			es, err := ReadSmaps(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			addr := uint64(uintptr(unsafePointer(mem)))
			for _, e := range es {
				if e.Start <= addr && addr < e.End {
					if !e.VmFlags.Has(tc.want) {
						t.Errorf("VmFlags %v lack %q", e.VmFlags, tc.want)
					}
					if e.Rss == 0 || e.Anonymous == 0 {
						t.Errorf("touched page not counted: Rss=%d Anonymous=%d", e.Rss, e.Anonymous)
					}
					return
				}
			}
			t.Fatalf("no smaps entry for %#x", addr)
		})
	}
}

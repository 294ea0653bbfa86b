package procfs

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestPagemapEntry(t *testing.T) {
	tests := []struct {
		name string
		e    PagemapEntry
		want [8]uint64 // present, swapped, fileShared, exclusive, softDirty, uffdWP, pfn, swapOffset
	}{
		{"zero", 0, [8]uint64{}},
		{"private anon", PagemapPresent | PagemapExclusive | 0x1234, [8]uint64{1, 0, 0, 1, 0, 0, 0x1234, 0}},
		{"file", PagemapPresent | PagemapFileShared | PagemapPFNMask, [8]uint64{1, 0, 1, 0, 0, 0, PagemapPFNMask, 0}},
		{"swapped", PagemapSwapped | PagemapSoftDirty | 0x3<<5 | 0x2, [8]uint64{0, 1, 0, 0, 1, 0, 0, 3}},
		{"uffd wp", PagemapPresent | PagemapUffdWP, [8]uint64{1, 0, 0, 0, 0, 1, 0, 0}},
	}
	b := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			got := [8]uint64{b(e.Present()), b(e.Swapped()), b(e.FileShared()), b(e.Exclusive()), b(e.SoftDirty()), b(e.UffdWP()), e.PFN(), e.SwapOffset()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("bits mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if got := PagemapEntry(PagemapSwapped | 0x3<<5 | 0x2).SwapType(); got != 2 {
		t.Errorf("SwapType = %d, want 2", got)
	}
	for _, tc := range []struct {
		e    PagemapEntry
		want bool
	}{
		{PagemapSwapped | PagemapUffdWP | 1<<5 | 31, true}, // as read on Linux 6.18
		{PagemapSwapped | 1<<5 | 31, true},
		{PagemapSwapped | 2<<5 | 31, false}, // another marker (swap-in error)
		{PagemapSwapped | PagemapUffdWP | 1<<5 | 3, false},
		{PagemapPresent | PagemapUffdWP | 1<<5 | 31, false},
		{PagemapSwapped | PagemapUffdWP, false}, // without CAP_SYS_ADMIN
		{PagemapSwapped | PagemapGuard | 4<<5 | 31, false},
	} {
		if got := tc.e.UffdWPMarker(); got != tc.want {
			t.Errorf("%#x: UffdWPMarker = %v, want %v", uint64(tc.e), got, tc.want)
		}
	}
	// A guard page, as read on Linux 6.18.
	if e := PagemapEntry(0x440000000000009f); !e.Guard() || e.Present() {
		t.Errorf("%#x: Guard %v, Present %v; want a guard page", uint64(e), e.Guard(), e.Present())
	}
}

func TestReadPagemapSelf(t *testing.T) {
	ps := os.Getpagesize()
	const pages = 8
	mem, err := unix.Mmap(-1, 0, pages*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	touched := map[int]bool{1: true, 2: true, 6: true}
	for p := range touched {
		mem[p*ps] = 1
	}
	f, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := uint64(uintptr(unsafePointer(mem)))
	buf := make([]uint64, 0, 100)
	got, err := ReadPagemap(f, start, start+pages*uint64(ps), buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != pages || &got[0] != &buf[:1][0] {
		t.Errorf("got %d entries (buffer reused: %v), want %d", len(got), &got[0] == &buf[:1][0], pages)
	}
	for i, raw := range got {
		e := PagemapEntry(raw)
		if e.Present() != touched[i] {
			t.Errorf("page %d: present=%v, want %v", i, e.Present(), touched[i])
		}
		if touched[i] && (!e.Exclusive() || e.FileShared() || e.PFN() == 0) {
			t.Errorf("page %d: %#x, want exclusive anon page with a PFN", i, raw)
		}
	}

	// More pages than one batch, spanning our mapping, in one call.
	big, err := ReadPagemap(f, start-pagemapBatch*uint64(ps), start+pages*uint64(ps), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, big[pagemapBatch:]); diff != "" {
		t.Errorf("batched read differs (-small +big):\n%s", diff)
	}

	// Beyond the user address space the kernel ends the file.
	vsys, err := ReadPagemap(f, 0xffffffffff600000, 0xffffffffff602000, []uint64{7, 7})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{0, 0}, vsys); diff != "" {
		t.Errorf("[vsyscall] entries (-want +got):\n%s", diff)
	}

	if _, err := ReadPagemap(f, start+1, start+uint64(ps), nil); err == nil || !strings.Contains(err.Error(), "not page aligned") {
		t.Errorf("unaligned range: %v", err)
	}
	if got, err := ReadPagemap(f, start, start, nil); err != nil || len(got) != 0 {
		t.Errorf("empty range = %v, %v", got, err)
	}
}

func TestReadPagemapFileMapping(t *testing.T) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(int(f.Fd()), 0, ps, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	t.Logf("first byte of the executable: %#x", mem[0]) // fault the page in
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	start := uint64(uintptr(unsafePointer(mem)))
	got, err := ReadPagemap(pm, start, start+uint64(ps), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := PagemapEntry(got[0]); !e.Present() || !e.FileShared() {
		t.Errorf("file page entry %#x: want present and file-backed", got[0])
	}
}

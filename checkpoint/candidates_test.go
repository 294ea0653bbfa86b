package checkpoint

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// readSink keeps the compiler from dropping reads made to fault pages in.
var readSink byte

// The pages of a private anonymous mapping worth storing, found by
// PAGEMAP_SCAN and by pagemap: written pages, not holes, not guard pages;
// a page only read may map the shared zero page, which the scan leaves out.
// A sparse mapping of 64 GiB costs the scan what it holds.
func TestCandidatesAnonymous(t *testing.T) {
	if !sys.PagemapKnowsGuards() {
		t.Skip("PAGEMAP_SCAN does not know guard pages (before Linux 6.15)")
	}
	ps := uint64(os.Getpagesize())
	const pages = 4096
	mem, err := unix.Mmap(-1, 0, pages*int(ps), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	write := func(from, to uint64) {
		for i := from; i < to; i++ {
			mem[i*ps] = 1
		}
	}
	write(0, 100)
	write(200, 300)
	write(1000, 1001)
	for i := uint64(400); i < 410; i++ {
		readSink += mem[i*ps] // the zero page
	}
	for _, g := range [][2]uint64{{250, 251}, {3000, 3002}} {
		if err := unix.Madvise(mem[g[0]*ps:g[1]*ps], unix.MADV_GUARD_INSTALL); err != nil {
			t.Fatal(err)
		}
	}
	start := uint64(uintptrOf(&mem[0]))
	m := &procfs.Mapping{Start: start, End: start + pages*ps, Prot: procfs.ProtRead | procfs.ProtWrite, Kind: procfs.KindAnon}
	d := newMemoryDumper(&Stats{}, 0, nil, nil)
	if err := d.open(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	written := []ckpt.PageRun{{Index: 0, Count: 100}, {Index: 200, Count: 50}, {Index: 251, Count: 49}}
	// A read maps the shared zero page, except where the kernel forbids
	// it (this machine's does): then the pages read are the process's.
	read := []ckpt.PageRun{{Index: 400, Count: 10}}
	if e, err := procfs.ReadPagemap(d.pagemap, start+400*ps, start+401*ps, nil); err != nil {
		t.Fatal(err)
	} else if procfs.PagemapEntry(e[0]).PFN() == zeroPagePFN() {
		read = nil
	}
	guards := []ckpt.PageRun{{Index: 250, Count: 1}, {Index: 3000, Count: 2}}
	for _, tc := range []struct {
		name string
		scan bool
		want []ckpt.PageRun
	}{
		{"PAGEMAP_SCAN", true, append(append(written[:3:3], read...), ckpt.PageRun{Index: 1000, Count: 1})},
		{"pagemap", false, append(written[:3:3], ckpt.PageRun{Index: 400, Count: 10}, ckpt.PageRun{Index: 1000, Count: 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.scan = tc.scan
			if err := d.candidates(m); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, d.runs); diff != "" {
				t.Errorf("pages to store (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(guards, d.guards); diff != "" {
				t.Errorf("guard pages (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("sparse 64 GiB", func(t *testing.T) {
		const size = 64 << 30
		sparse, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			t.Skip(err)
		}
		defer unix.Munmap(sparse)
		unix.Madvise(sparse, unix.MADV_NOHUGEPAGE)
		// Two pages either side of the middle: a run across the parts
		// the scan is cut in on two cores.
		half := size / ps / 2
		for _, i := range []uint64{0, 1 << 20, half - 1, half, size/ps - 1} {
			sparse[i*ps] = 1
		}
		start := uint64(uintptrOf(&sparse[0]))
		d.scan = true
		if err := d.candidates(&procfs.Mapping{Start: start, End: start + size, Prot: procfs.ProtRead | procfs.ProtWrite, Kind: procfs.KindAnon}); err != nil {
			t.Fatal(err)
		}
		want := []ckpt.PageRun{{Index: 0, Count: 1}, {Index: 1 << 20, Count: 1}, {Index: half - 1, Count: 2}, {Index: size/ps - 1, Count: 1}}
		if diff := cmp.Diff(want, d.runs); diff != "" {
			t.Errorf("pages to store (-want +got):\n%s", diff)
		}
	})
}

// A MAP_DROPPABLE mapping has no page worth storing, written or not.
func TestCandidatesDroppable(t *testing.T) {
	ps := uint64(os.Getpagesize())
	mem, err := unix.Mmap(-1, 0, 16*int(ps), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_DROPPABLE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Skipf("MAP_DROPPABLE: %v", err)
	}
	defer unix.Munmap(mem)
	for i := range 16 {
		mem[uint64(i)*ps] = 1
	}
	start := uint64(uintptrOf(&mem[0]))
	m := &procfs.Mapping{Start: start, End: start + 16*ps, Prot: procfs.ProtRead | procfs.ProtWrite, Kind: procfs.KindAnon}
	d := newMemoryDumper(&Stats{}, 0, nil, nil)
	if err := d.open(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		name  string
		flags []string
		want  uint64
	}{
		{"as smaps says", []string{ckpt.MadvWipeOnFork, mapNoReserve, mapDroppable}, 0},
		{"taken for private", nil, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.madvise = map[uint64][]string{start: tc.flags}
			if err := d.candidates(m); err != nil {
				t.Fatal(err)
			}
			if got := runsCount(d.runs); got != tc.want {
				t.Errorf("%d pages to store, want %d", got, tc.want)
			}
		})
	}
}

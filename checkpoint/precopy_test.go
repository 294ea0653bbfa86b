package checkpoint

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// trackedFixture is a pre-copy of 64 MiB of this process's own memory:
// every page copied, one in a hundred written since.
func trackedFixture(t testing.TB) (*preCopy, *tracker, *procfs.Mapping, []ckpt.PageRun, []uint64, []byte) {
	ps := uint64(os.Getpagesize())
	const pages = 16384
	mem, err := unix.Mmap(-1, 0, pages*int(ps), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	for i := range pages {
		mem[uint64(i)*ps] = byte(i) | 1
	}
	start := uint64(uintptrOf(&mem[0]))
	m := &procfs.Mapping{Start: start, End: start + pages*ps}
	pc := &preCopy{pageSize: ps}
	tr := &tracker{pid: os.Getpid(), blocks: map[uint64]*pageBlock{}}
	for i := uint64(0); i < pages; i++ {
		tr.store(start+i*ps, ps, mem[i*ps:(i+1)*ps])
	}
	protected := make([]uint64, pages/64)
	for i := uint64(0); i < pages; i++ {
		if i%100 != 7 {
			protected[i/64] |= 1 << (i % 64)
		} else {
			mem[i*ps+1] = 0x5a // written since its copy
		}
	}
	pc.prepareFresh()
	return pc, tr, m, []ckpt.PageRun{{Index: 0, Count: pages}}, protected, mem
}

// The frozen phase of a tracked mapping takes a still-protected page's
// copy and reads a written one anew.
func TestReadTracked(t *testing.T) {
	pc, tr, m, runs, protected, mem := trackedFixture(t)
	got, err := pc.readTracked(tr, m, runs, protected)
	if err != nil {
		t.Fatal(err)
	}
	var image []byte
	for _, p := range got.pieces {
		image = append(image, p...)
	}
	if uint64(len(image)) != uint64(len(mem)) || got.size != int64(len(mem)) {
		t.Fatalf("pieces hold %d bytes (size %d), want %d", len(image), got.size, len(mem))
	}
	ps := pc.pageSize
	for i := uint64(0); i < uint64(len(mem))/ps; i++ {
		if image[i*ps] != mem[i*ps] || image[i*ps+1] != mem[i*ps+1] {
			t.Fatalf("page %d: stored %x %x, memory holds %x %x", i, image[i*ps], image[i*ps+1], mem[i*ps], mem[i*ps+1])
		}
	}
	if want := uint64(len(mem))/ps/100 + 1; got.read/ps != want {
		t.Errorf("read %d pages now, want %d", got.read/ps, want)
	}
}

func BenchmarkReadTracked(b *testing.B) {
	pc, tr, m, runs, protected, _ := trackedFixture(b)
	for b.Loop() {
		// The same memory again, all of it room.
		pc.fresh = &pageStore{slabs: pc.fresh.slabs, used: make([]int, len(pc.fresh.slabs))}
		if _, err := pc.readTracked(tr, m, runs, protected); err != nil {
			b.Fatal(err)
		}
	}
}

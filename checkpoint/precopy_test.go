package checkpoint

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// trackedFixture is a pre-copy of 64 MiB of this process's own memory,
// tracked the way a target's is: write-protected with an asynchronous
// userfaultfd, then every page copied by a first round (one in fifty
// holds only zeros). With file, the memory is a private mapping of a file
// whose pages hold byte(i)|1: one page in ten is written (copied on
// write), one in ten never touched, the others read: only the written ones
// are the process's own.
func trackedFixture(t testing.TB, file bool) (*preCopy, *tracker, *procfs.Mapping, []byte) {
	ps := uint64(os.Getpagesize())
	const pages = 16384
	fd, flags, kind := -1, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, procfs.KindAnon
	if file {
		f, err := os.CreateTemp(t.TempDir(), "mapped")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		content := make([]byte, pages*ps)
		for i := range uint64(pages) {
			content[i*ps] = byte(i) | 1
		}
		if _, err := f.Write(content); err != nil {
			t.Fatal(err)
		}
		fd, flags, kind = int(f.Fd()), unix.MAP_PRIVATE, procfs.KindFile
	}
	mem, err := unix.Mmap(fd, 0, pages*int(ps), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	var sum byte
	for i := range uint64(pages) {
		switch {
		case file && i%10 == 5:
			// Never touched.
		case file && i%10 != 0:
			sum += mem[i*ps] // the file's page, present
		case !file && untouched(i):
		case i%50 == 3:
			mem[i*ps] = 0 // present, all zeros
		default:
			mem[i*ps] = byte(i) | 1
		}
	}
	if file && sum == 0 {
		t.Fatal("read nothing of the file")
	}
	for i := uint64(5); file && i < pages; i += 10 {
		// Reading a neighbour may have mapped it (fault-around).
		if err := unix.Madvise(mem[i*ps:(i+1)*ps], unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	start := uint64(uintptrOf(&mem[0]))
	m := &procfs.Mapping{Start: start, End: start + pages*ps, Prot: procfs.ProtRead | procfs.ProtWrite, Kind: kind}
	ufd, _, errno := unix.Syscall(sys.SysUserfaultfd, unix.O_CLOEXEC|unix.O_NONBLOCK|sys.UffdUserModeOnly, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v", errno)
	}
	uffd := os.NewFile(ufd, "userfaultfd")
	if err := sys.UffdEnableWPAsync(int(ufd)); err != nil {
		uffd.Close()
		t.Skipf("asynchronous write protection: %v", err)
	}
	pagemap, err := procfs.OpenPagemap(os.Getpid())
	if err != nil {
		uffd.Close()
		t.Fatal(err)
	}
	tr := &tracker{pid: os.Getpid(), uffd: uffd, pagemap: pagemap, blocks: map[uint64]*pageBlock{}}
	t.Cleanup(tr.close)
	// A guard page made before the tracking.
	if err := unix.Madvise(mem[2000*ps:2001*ps], unix.MADV_GUARD_INSTALL); err != nil {
		t.Fatal(err)
	}
	if err := sys.UffdRegisterWP(int(ufd), m.Start, m.Size()); err != nil {
		t.Fatal(err)
	}
	store, err := newPageFile(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tr.file = store
	pc := &preCopy{pageSize: ps, regions: make([]sys.PageRegion, 64), buf: make([]byte, chunkPages*ps),
		guardCategory: sys.PagemapKnowsGuards(), procs: map[int]*tracker{tr.pid: tr}, file: store}
	if !pc.guardCategory {
		t.Skip("PAGEMAP_SCAN does not know guard pages (before Linux 6.15)")
	}
	tr.registered = []procfs.Mapping{*m}
	if err := tr.protect(m, pc.regions); err != nil {
		t.Fatal(err)
	}
	// Protection leaves the entries of pages never populated empty: no
	// markers, no page tables made for them.
	entries, err := procfs.ReadPagemap(pagemap, m.Start+5000*ps, m.Start+5100*ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if !file && e != 0 {
			t.Fatalf("page %d, never populated: pagemap entry %#x after protection", 5000+i, e)
		}
	}
	pc.round()
	if want := uint64(pages - 1 - 100); !file && pc.lastRound != want {
		t.Fatalf("the first round copied %d pages, want %d", pc.lastRound, want)
	}
	if want := uint64((pages+9)/10 - 1); file && pc.lastRound != want {
		t.Fatalf("the first round copied %d pages, want the %d written", pc.lastRound, want)
	}
	pc.prepareFresh()
	return pc, tr, m, mem
}

// untouched says whether page i of the anonymous fixture is never
// populated.
func untouched(i uint64) bool { return i >= 5000 && i < 5100 }

// stored is the image of m that the frozen phase's results describe: the
// contents of every stored page, by index.
func stored(t *testing.T, file *pageFile, got []*precopied, ps, chunk uint64) map[uint64][]byte {
	image := map[uint64][]byte{}
	for _, p := range got {
		data := readRanges(t, file, p.ranges)
		if int64(len(data)) != p.size {
			t.Fatalf("pieces hold %d bytes, size says %d", len(data), p.size)
		}
		var n uint64
		for _, r := range p.runs {
			for i := r.Index; i < r.Index+r.Count; i++ {
				if _, dup := image[i]; dup {
					t.Fatalf("page %d stored twice", i)
				}
				image[i] = data[n*ps : (n+1)*ps]
				n++
			}
		}
		if n*ps != uint64(len(data)) || n > chunk {
			t.Fatalf("runs hold %d pages, pieces %d bytes, chunk %d pages", n, len(data), chunk)
		}
	}
	return image
}

// The frozen phase of a tracked mapping takes a page still write-protected
// from its copy and reads a written one anew; a page gone since its copy,
// written to zeros, or the file's, is not stored.
func TestReadMappingFrozen(t *testing.T) {
	for _, tc := range []struct {
		name string
		file bool
	}{
		{"anonymous", false},
		{"private file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, tr, m, mem := trackedFixture(t, tc.file)
			ps := pc.pageSize
			pages := uint64(len(mem)) / ps
			// What should be stored: by index, whether the page is the
			// process's own (not the file's).
			own := make([]bool, pages)
			var written, copied uint64
			for i := range pages {
				own[i] = (tc.file && i%10 == 0 || !tc.file && !untouched(i)) && i != 2000
				if own[i] {
					copied++
				}
			}
			// A guard page made after its copy. (Not in a file
			// mapping: there, Linux 6.18 loops in MADV_GUARD_INSTALL
			// for as long as the page is write-protected.)
			wantGuards := []ckpt.PageRun{{Index: 2000, Count: 1}}
			if !tc.file {
				if err := unix.Madvise(mem[2100*ps:2101*ps], unix.MADV_GUARD_INSTALL); err != nil {
					t.Fatal(err)
				}
				own[2100] = false
				copied--
				wantGuards = append(wantGuards, ckpt.PageRun{Index: 2100, Count: 1})
			}
			for i := uint64(7); i < pages; i += 100 {
				mem[i*ps+1] = 0x5a
				written++
				if !own[i] {
					own[i] = true
					copied++ // a copy made now
				}
			}
			mem[50*ps+9] = 1 // was all zeros or the file's
			written++
			if !own[50] {
				own[50] = true
				copied++
			}
			if !tc.file {
				mem[5050*ps+3] = 9 // populated since the protection
				written++
				own[5050] = true
				copied++
			}
			clear(mem[3000*ps : 3001*ps]) // all zeros now
			written++
			if err := unix.Madvise(mem[1000*ps:1004*ps], unix.MADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
			for i := 1000; i < 1004; i++ {
				if own[i] {
					own[i] = false // gone now
					copied--
				}
			}
			// Page 20's copy is made to differ from the memory: taken from
			// the copy, it shows.
			if _, err := pc.file.f.WriteAt(bytes.Repeat([]byte{0xee}, int(ps)), tr.offset(*tr.slot(m.Start+20*ps, ps, false), ps)); err != nil {
				t.Fatal(err)
			}

			const chunk = 1000
			got, err := pc.readMapping(tr, m, chunk)
			if err != nil {
				t.Fatal(err)
			}
			image := stored(t, pc.file, got, ps, chunk)
			var read, reused uint64
			for _, p := range got {
				read += p.read
				reused += p.reused
			}
			var guards []ckpt.PageRun
			for _, p := range got {
				guards = append(guards, p.guards...)
			}
			if diff := cmp.Diff(wantGuards, guards); diff != "" {
				t.Errorf("guard pages (-want +got):\n%s", diff)
			}
			for i := range pages {
				if i == 2000 || i == 2100 && !tc.file {
					if _, ok := image[i]; ok {
						t.Errorf("guard page %d: stored", i)
					}
					continue
				}
				want := mem[i*ps : (i+1)*ps]
				if i == 20 {
					want = bytes.Repeat([]byte{0xee}, int(ps))
				}
				page, ok := image[i]
				switch {
				case (allZero(want) || !own[i]) && ok:
					t.Errorf("page %d: stored (zeros %v, the process's own %v)", i, allZero(want), own[i])
				case !allZero(want) && own[i] && !ok:
					t.Errorf("page %d: not stored", i)
				case ok && !bytes.Equal(page, want):
					t.Errorf("page %d: stored %x %x, want %x %x", i, page[0], page[1], want[0], want[1])
				}
			}
			if read/ps != written {
				t.Errorf("read %d pages now, want the %d written", read/ps, written)
			}
			if want := copied - written; !tc.file && reused != want {
				t.Errorf("took %d pages from the copies, want %d", reused, want)
			}
		})
	}
}

func BenchmarkReadMappingFrozen(b *testing.B) {
	pc, tr, m, mem := trackedFixture(b, false)
	ps := pc.pageSize
	for i := uint64(7); i < uint64(len(mem))/ps; i += 100 {
		mem[i*ps+1] = 0x5a
	}
	for b.Loop() {
		if _, err := pc.readMapping(tr, m, chunkPages); err != nil {
			b.Fatal(err)
		}
	}
}

// readRanges reads ranges of file one after another.
func readRanges(t testing.TB, file *pageFile, ranges []ckpt.FileRange) []byte {
	t.Helper()
	var data []byte
	for _, r := range ranges {
		b := make([]byte, r.N)
		if _, err := file.f.ReadAt(b, r.Off); err != nil {
			t.Fatalf("%d bytes at %d of the page file: %v", r.N, r.Off, err)
		}
		data = append(data, b...)
	}
	return data
}

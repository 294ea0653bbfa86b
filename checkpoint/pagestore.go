package checkpoint

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// pageStore hands out memory, prepared before the freeze, that pages read
// while the tree is frozen go into and stay in: the image refers to it
// instead of copying the pages once more. Nothing taken is reused while
// the store lives. The memory is in slabs, so an image keeps only those it
// uses once the store is dropped. It is not safe for concurrent use.
type pageStore struct {
	slabs [][]byte
	used  []int // bytes taken from each slab
	first int   // the first slab with room left
	last  int   // the slab last taken from, for giveBack
}

// storeSlab is the size of a page store's slabs: 64 MiB.
const storeSlab = 64 << 20

// newPageStore prepares about n bytes, a slab per core at once: the faults
// are as slow on both cores together, and preparing a GiB of fresh memory
// took 5.7 s on one goroutine, 3.2 s on two.
func newPageStore(n int) *pageStore {
	s := &pageStore{}
	for left := n; left > 0; left -= storeSlab {
		s.slabs = append(s.slabs, make([]byte, min(left, storeSlab)))
		s.used = append(s.used, 0)
	}
	next := make(chan []byte)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(s.slabs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slab := range next {
				touchByKernel(slab)
			}
		}()
	}
	for _, slab := range s.slabs {
		next <- slab
	}
	close(next)
	wg.Wait()
	return s
}

// prepared says whether the store has any memory.
func (s *pageStore) prepared() bool { return s != nil && len(s.slabs) > 0 }

// take returns n bytes of prepared memory, from the first slab with as
// much room left (smaller requests fill what larger ones left), or nil if
// no slab has.
func (s *pageStore) take(n int) []byte {
	if s == nil || n <= 0 {
		return nil
	}
	for i := s.first; i < len(s.slabs); i++ {
		used := s.used[i]
		if len(s.slabs[i])-used < n {
			continue
		}
		s.used[i], s.last = used+n, i
		for s.first < len(s.slabs) && len(s.slabs[s.first])-s.used[s.first] < os.Getpagesize() {
			s.first++
		}
		return s.slabs[i][used : used+n : used+n]
	}
	return nil
}

// giveBack returns b[keep:] to the store if b is the last thing taken:
// room read into for pages that were not kept.
func (s *pageStore) giveBack(b []byte, keep int) {
	if s == nil || s.last >= len(s.slabs) || keep >= len(b) || s.used[s.last] < len(b) {
		return
	}
	if &s.slabs[s.last][s.used[s.last]-len(b)] == &b[0] {
		s.used[s.last] -= len(b) - keep
		s.first = min(s.first, s.last)
	}
}

// touched allocates n bytes and touches every page: first-touch page faults
// are slow on this kind of machine and must not be paid while the target
// is frozen, so memory the frozen phase writes is prepared before it.
func touched(n int) []byte {
	b := make([]byte, n)
	touch(b)
	return b
}

func touch(b []byte) {
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
}

// kernelTouched is touched for memory the kernel writes while the target is
// frozen (process_vm_readv's destination). On a machine with shadow paging
// the kernel's first write to a user page costs a fault of its own even
// when user space touched the page before — about as much as copying the
// page: measured here, reading 2621 scattered pages into a buffer touched
// only from user space took 25 ms, into one the kernel had written 4.5 ms.
// Reading /dev/zero into the buffer has the kernel write every page.
//
// Transparent huge pages (MADV_HUGEPAGE) would make these faults one per
// 2 MiB, but here memory so prepared was as slow as unprepared memory
// once the freeze came, one time in two (a GiB read in 360 ms instead of
// 120), and is not used.
func kernelTouched(n int) []byte {
	b := make([]byte, n)
	touchByKernel(b)
	return b
}

// touchByKernel touches every page of b from user space, then has the
// kernel write it (reading /dev/zero into it).
func touchByKernel(b []byte) {
	touch(b)
	zero, err := os.Open("/dev/zero")
	if err != nil {
		return
	}
	defer zero.Close()
	for at := 0; at < len(b); {
		k, err := zero.Read(b[at:min(len(b), at+1<<20)])
		if err != nil || k == 0 {
			break
		}
		at += k
	}
}

// A bufPool keeps buffers of one size that are used again and again, so
// that their pages are faulted in once: take makes a new one when none is
// free, put keeps a buffer while there is room.
type bufPool struct {
	bufs chan []byte
	size int
}

// newBufPool keeps up to keep buffers of size bytes; with touched, that
// many are made now and touched by the kernel (kernelTouched), for reads
// while the tree is frozen.
func newBufPool(keep, size int, touched bool) *bufPool {
	p := &bufPool{bufs: make(chan []byte, keep), size: size}
	for range keep {
		if !touched {
			break
		}
		p.bufs <- kernelTouched(size)
	}
	return p
}

func (p *bufPool) take() []byte {
	select {
	case b := <-p.bufs:
		return b
	default:
		return make([]byte, p.size)
	}
}

func (p *bufPool) put(b []byte) {
	select {
	case p.bufs <- b:
	default:
	}
}

// pageFile is an in-memory image's page store that crsub never maps: a
// memory file (memfd), allocated before the freeze, that pages read while
// the tree is frozen are written into, through a small buffer, and that
// the image refers to by range. On a machine with shadow paging the first
// access to each page of user memory costs 15-30 µs (a GiB: 7-10 s), and
// memory prepared for pages to be read into pays it for every page; the
// kernel's own pages of a memory file pay nothing of the kind (a GiB
// allocated in 0.1-0.2 s), and the image is written out of it inside the
// kernel (sendfile). Writers reserve room from its end concurrently; what a
// reservation did not use is given back (a hole punched). It is closed
// with the image that holds it.
type pageFile struct {
	f *os.File
	// end is the end of the room reserved so far.
	end atomic.Int64
}

// newPageFile makes a page file with n bytes allocated.
func newPageFile(n int64) (*pageFile, error) {
	fd, err := sys.MemfdCreate("crsub-pages", 0)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if err := sys.Fallocate(fd.Int(), 0, 0, n); err != nil {
			fd.Close()
			return nil, err
		}
	}
	return &pageFile{f: fd.File("crsub-pages")}, nil
}

// preallocate allocates n bytes past the room reserved so far, for the
// reservations to come.
func (s *pageFile) preallocate(n int64) error {
	return sys.Fallocate(int(s.f.Fd()), 0, s.end.Load(), n)
}

// A pageFileHolder is an image destination that keeps a page file for
// what it refers to, as long as it needs it: the pre-copy's copies go
// there.
type pageFileHolder interface {
	pagesFile() (*pageFile, error)
}

// reserve takes n bytes of room and returns where they start.
func (s *pageFile) reserve(n int64) int64 { return s.end.Add(n) - n }

// release gives back n reserved bytes at off that hold nothing.
func (s *pageFile) release(off, n int64) {
	// What fails to be punched stays allocated, unused: only memory.
	_ = sys.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// trim gives back what was allocated past the room reserved.
func (s *pageFile) trim() {
	if err := s.f.Truncate(s.end.Load()); err != nil {
		return // only memory
	}
}

// Close lets the file go: its pages are freed once nothing refers to them.
func (s *pageFile) Close() error {
	if s == nil {
		return nil
	}
	return s.f.Close()
}

// fileRange is a payload written into the page file: n bytes at off, and
// their checksum (ckpt.PayloadChecksum).
type fileRange struct {
	off, n int64
	crc    uint32
}

// filePiecePages is how many pages are read at a time on their way into
// the page file (1 MiB): the buffer they go through is used again and
// again, so its pages are faulted in once.
const filePiecePages = 256

// readIntoFile reads the pages of runs a piece at a time into buf (read
// returns the pieces' pages to keep, compacted, and their runs), and
// writes them into the page file in one range, reserved for all of runs'
// pages: the room zero pages left is given back. It returns the range and
// the runs of the pages kept.
func readIntoFile(file *pageFile, runs []ckpt.PageRun, buf []byte, pageSize uint64, read func(piece []ckpt.PageRun, buf []byte) ([]byte, []ckpt.PageRun, error)) (fileRange, []ckpt.PageRun, error) {
	total := int64(runsCount(runs) * pageSize)
	r := fileRange{off: file.reserve(total)}
	var kept []ckpt.PageRun
	for _, piece := range splitRuns(runs, uint64(len(buf))/pageSize) {
		data, k, err := read(piece, buf)
		if err != nil {
			file.release(r.off, total)
			return fileRange{}, nil, err
		}
		if _, err := file.f.WriteAt(data, r.off+r.n); err != nil {
			file.release(r.off, total)
			return fileRange{}, nil, fmt.Errorf("the page store: %w", err)
		}
		r.crc = ckpt.PayloadChecksum(r.crc, data)
		r.n += int64(len(data))
		for _, run := range k {
			kept = addRun(kept, run.Index, run.Count)
		}
	}
	if r.n < total {
		file.release(r.off+r.n, total-r.n)
	}
	return r, kept, nil
}

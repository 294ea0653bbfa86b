package checkpoint

import (
	"os"
	"runtime"
	"sync"
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

// takeOrAllocate is take, allocating (unprepared) memory when the prepared
// memory is used up.
func (s *pageStore) takeOrAllocate(n int) []byte {
	if b := s.take(n); b != nil {
		return b
	}
	return make([]byte, n)
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

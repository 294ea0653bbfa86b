package checkpoint

import (
	"os"
	"runtime"
	"sync"
)

// pageStore hands out memory, prepared before the freeze, that pages read
// while the tree is frozen go into and stay in: the image refers to it
// instead of copying the pages once more. Nothing taken is reused while
// the store lives. It is not safe for concurrent use.
type pageStore struct {
	slabs [][]byte
	used  int // bytes taken from the last slab
}

// newPageStore prepares about n bytes.
func newPageStore(n int) *pageStore {
	s := &pageStore{}
	if n > 0 {
		s.slabs = append(s.slabs, kernelTouched(n))
	}
	return s
}

// take returns n bytes of prepared memory, or nil if not as many are left.
func (s *pageStore) take(n int) []byte {
	if s == nil {
		return nil
	}
	last := len(s.slabs) - 1
	if n <= 0 || last < 0 || len(s.slabs[last])-s.used < n {
		return nil
	}
	b := s.slabs[last][s.used : s.used+n : s.used+n]
	s.used += n
	return b
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
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	return b
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
	// The faults are as slow on both cores at once: preparing a GiB of
	// fresh memory took 5.7 s on one goroutine, 3.2 s on two.
	workers := runtime.NumCPU()
	if n < 64<<20 {
		workers = 1
	}
	ps := os.Getpagesize()
	per := (n/workers + ps - 1) / ps * ps
	var wg sync.WaitGroup
	for at := 0; at < n; at += per {
		wg.Add(1)
		go func(part []byte) {
			defer wg.Done()
			touchByKernel(part)
		}(b[at:min(n, at+per)])
	}
	wg.Wait()
	return b
}

// touchByKernel touches every page of b from user space, then has the
// kernel write it (reading /dev/zero into it).
func touchByKernel(b []byte) {
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
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

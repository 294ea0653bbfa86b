package sys

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// A counter on the mmap lock taken for writing sees a madvise that changes
// a mapping's flags, and not the page faults of writing to it; the same
// with the tracepoint held (HoldTracepoint), whose own event counts
// nothing of the counter's.
func TestTracepointCounter(t *testing.T) {
	id, err := TracepointID("mmap_lock/mmap_lock_acquire_returned")
	if err != nil {
		t.Skipf("no mmap_lock tracepoint: %v", err)
	}
	if _, err := TracepointID("mmap_lock/no_such_event"); err == nil {
		t.Error("TracepointID of a tracepoint that does not exist: no error")
	}
	t.Run("alone", func(t *testing.T) { testTracepointCounter(t, id) })
	t.Run("held", func(t *testing.T) {
		hold, err := HoldTracepoint(id)
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		testTracepointCounter(t, id)
		if n, err := ReadCounter(hold); err != nil || n != 0 {
			t.Errorf("the hold's own event: count %d, %v; want 0, nil", n, err)
		}
	})
}

func testTracepointCounter(t *testing.T, id uint64) {
	// A thread of its own, so that nothing else this test binary does is
	// counted; Go creates the threads it needs from a locked thread
	// elsewhere.
	type result struct {
		afterWrites, afterMadvise uint64
		err                       error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var r result
		defer func() { done <- r }()
		mem, err := unix.Mmap(-1, 0, 64*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			r.err = err
			return
		}
		defer unix.Munmap(mem)
		fd, err := OpenTracepointCounter(id, "write == 1", unix.Gettid())
		if err != nil {
			r.err = err
			return
		}
		defer fd.Close()
		for i := 0; i < len(mem); i += os.Getpagesize() {
			mem[i] = 1
		}
		if r.afterWrites, r.err = ReadCounter(fd); r.err != nil {
			return
		}
		if r.err = unix.Madvise(mem, unix.MADV_DONTFORK); r.err != nil {
			return
		}
		r.afterMadvise, r.err = ReadCounter(fd)
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.afterWrites != 0 {
		t.Errorf("after writing to 64 pages: count %d, want 0", r.afterWrites)
	}
	if r.afterMadvise == 0 {
		t.Error("after madvise(MADV_DONTFORK): count 0, want at least 1")
	}
}

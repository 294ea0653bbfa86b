package sys

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// niceOf returns thread tid's nice value.
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	// The system call returns 20 - nice, to keep clear of -1.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

// TestYielding runs a function at the lowest priority, on a thread of its
// own: the caller's priority is untouched, and afterwards no thread that
// runs goroutines keeps the lowest priority (the thread got its priority
// back, or ended; a main thread the runtime parked for good runs nothing).
func TestYielding(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	caller := unix.Gettid()
	before := niceOf(t, caller)
	for range 20 {
		var tid, nice int
		Yielding(func() {
			tid = unix.Gettid()
			nice = niceOf(t, tid)
		})
		if tid == caller {
			t.Fatal("ran on the caller's thread")
		}
		if nice != 19 {
			t.Fatalf("ran at nice %d, want 19", nice)
		}
		if got := niceOf(t, caller); got != before {
			t.Fatalf("the caller's nice went from %d to %d", before, got)
		}
		if tid == os.Getpid() {
			continue
		}
		// A thread that could not get its priority back is on its way out.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
			if err != nil || 20-p == before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %d kept nice %d", tid, 20-p)
			}
		}
	}
}

package sys

import (
	"fmt"
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

// TestYielding runs a function at the lowest priority, on a thread that
// ends with it: the caller's priority is untouched.
func TestYielding(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	caller := unix.Gettid()
	before := niceOf(t, caller)
	var tid, nice int
	Yielding(func() {
		tid = unix.Gettid()
		nice = niceOf(t, tid)
	})
	if tid == caller {
		t.Fatal("ran on the caller's thread")
	}
	if nice != 19 {
		t.Errorf("ran at nice %d, want 19", nice)
	}
	if got := niceOf(t, caller); got != before {
		t.Errorf("the caller's nice went from %d to %d", before, got)
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d, nice %d, still there after the function returned", tid, niceOf(t, tid))
		}
	}
}

package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// BenchmarkReadWritten1GiB1pc measures what a pre-copy's frozen phase
// cannot avoid when 1% of a GiB was written since the last round: reading
// those 2,622 pages, scattered, out of the stopped process. It reads them
// on one thread and split over two (each thread running before the clock
// starts, so no wake-up is counted), and copies as many scattered pages
// inside this process as the baseline. Where two-threads/one-thread is
// near 1, reading the written pages does not get faster with more cores,
// and the frozen phase of a pre-copy has this read as its floor.
func BenchmarkReadWritten1GiB1pc(b *testing.B) {
	const mib, step = 1024, 100 // every 100th page: 1%
	bin := crtest.Build(b, dirtier)
	dir := b.TempDir()
	p := crtest.Start(b, dir, bin, strconv.Itoa(mib), "10")
	defer func() {
		p.Kill()
		p.Wait()
	}()
	start, err := largestMapping(p.Pid)
	if err != nil {
		b.Fatal(err)
	}
	pageSize := os.Getpagesize()
	pages := (mib << 20) / pageSize
	written := (pages + step - 1) / step // the most any round writes
	dst := kernelWritten(b, written*pageSize)
	local := make([]byte, mib<<20)
	for i := 0; i < len(local); i += pageSize {
		local[i] = 1
	}
	var one, two, baseline time.Duration
	for i := 0; i < b.N; i++ {
		for k, threads := range []int{1, 2} {
			// The dirtier writes byte 64 of page i of its buffer, which
			// malloc put 16 bytes into the mapping, for i = round mod
			// step, step by step: the same pages of the mapping.
			round := 2*i + k
			p.Signal(syscall.SIGUSR1)
			name := filepath.Join(dir, fmt.Sprintf("dirtied.%d", round))
			crtest.WaitFor(b, func() bool { _, err := os.Stat(name); return err == nil }, name)
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				b.Fatal(err)
			}
			crtest.WaitFor(b, func() bool { return crtest.Status(p.Pid, "State") == "T (stopped)" }, "stopped")
			var iovs []unix.RemoteIovec
			for page := round % step; page < pages; page += step {
				iovs = append(iovs, unix.RemoteIovec{Base: uintptr(start) + uintptr(page*pageSize), Len: pageSize})
			}
			took, err := readSplit(p.Pid, dst, iovs, threads)
			if err != nil {
				b.Fatal(err)
			}
			if threads == 1 {
				one += took
			} else {
				two += took
			}
			if err := p.Signal(syscall.SIGCONT); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		for page, at := i%step, 0; page < pages && at < len(dst); page, at = page+step, at+pageSize {
			copy(dst[at:at+pageSize], local[page*pageSize:])
		}
		baseline += time.Since(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(one.Microseconds())/1000/n, "one-thread-ms")
	b.ReportMetric(float64(two.Microseconds())/1000/n, "two-threads-ms")
	b.ReportMetric(float64(two)/float64(one), "two-threads/one-thread")
	b.ReportMetric(float64(one.Nanoseconds())/n/float64(written)/1000, "us/page")
	b.ReportMetric(float64(baseline.Microseconds())/1000/n, "memcpy-ms")
	b.ReportMetric(float64(one)/float64(baseline), "one-thread/memcpy")
}

// readSplit reads iovs of pid into dst with process_vm_readv, split over
// threads OS threads, and returns how long that took once every thread
// was running: this goroutine reads the first share, each other share is
// read by a thread spinning until the clock starts (waking an idle core
// is not what is measured).
func readSplit(pid int, dst []byte, iovs []unix.RemoteIovec, threads int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	per := (len(iovs) + threads - 1) / threads
	share := func(t int) ([]byte, []unix.RemoteIovec) {
		from, to := min(t*per, len(iovs)), min((t+1)*per, len(iovs))
		at := 0
		for _, v := range iovs[:from] {
			at += v.Len
		}
		return dst[at:], iovs[from:to]
	}
	var ready, done atomic.Int32
	var begin atomic.Bool
	errs := make([]error, threads)
	for t := 1; t < threads; t++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Add(1)
			for !begin.Load() {
			}
			to, part := share(t)
			errs[t] = readIovecs(pid, to, part)
			done.Add(1)
		}()
	}
	for ready.Load() < int32(threads-1) {
		runtime.Gosched()
	}
	t0 := time.Now()
	begin.Store(true)
	to, part := share(0)
	errs[0] = readIovecs(pid, to, part)
	for done.Load() < int32(threads-1) {
	}
	took := time.Since(t0)
	return took, errors.Join(errs...)
}

// readIovecs reads all of iovs of pid into dst.
func readIovecs(pid int, dst []byte, iovs []unix.RemoteIovec) error {
	want := 0
	for _, v := range iovs {
		want += v.Len
	}
	n, err := sys.ProcessVMReadv(pid, [][]byte{dst[:want]}, iovs)
	if err == nil && n != want {
		err = fmt.Errorf("process_vm_readv: %d bytes of %d", n, want)
	}
	return err
}

// largestMapping returns the start of pid's largest private anonymous
// mapping: the dirtier's buffer.
func largestMapping(pid int) (uint64, error) {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return 0, err
	}
	var best procfs.Mapping
	for _, m := range maps {
		if m.Kind == procfs.KindAnon && !m.Shared && m.Size() > best.Size() {
			best = m
		}
	}
	if best.Size() == 0 {
		return 0, fmt.Errorf("pid %d has no anonymous mapping", pid)
	}
	return best.Start, nil
}

// kernelWritten returns n bytes the kernel has written once (read from
// /dev/zero): on this machine the kernel's first write to a page costs a
// fault of its own, which a checkpoint pays before the freeze.
func kernelWritten(b *testing.B, n int) []byte {
	buf := make([]byte, n)
	f, err := os.Open("/dev/zero")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, buf); err != nil {
		b.Fatal(err)
	}
	return buf
}

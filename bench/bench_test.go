package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
)

// subject touches MiB mebibytes of memory with a pattern, creates the
// file "ready" when done, and sleeps. Each page gets distinct bytes so
// none is skipped as zero.
const subject = `#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	size_t n = (size_t)atol(argv[1]) << 20;
	unsigned char *p = n ? malloc(n) : NULL;
	for (size_t i = 0; i < n; i += 8) *(size_t *)(p + i) = i * 2654435761u;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// memcpyBaseline copies n bytes between buffers touched beforehand (at most
// 1 GiB each, copied again as often as n needs, so a 4 GiB run does not need
// 8 GiB of baseline buffers).
func memcpyBaseline(n int) time.Duration {
	size := min(n, 1<<30)
	src := bytes.Repeat([]byte{1}, size)
	dst := bytes.Repeat([]byte{2}, size)
	start := time.Now()
	for left := n; left > 0; left -= size {
		copy(dst[:min(left, size)], src)
	}
	took := time.Since(start)
	// Given back now, not by the runtime's scavenger while the
	// measurement that follows runs: freeing 2 GiB beside it made a
	// checkpoint's writing of its image 8 times slower from a few hundred
	// MiB on (sendfile of 16 MiB: 4.5 ms, then 36 ms).
	runtime.KeepAlive(dst)
	debug.FreeOSMemory()
	return took
}

// shmWriteBaseline writes n bytes into a fresh file in dir: the floor for
// any checkpoint into that directory, since the filesystem must allocate
// every page (slow for memory this VM touches the first time).
func shmWriteBaseline(b *testing.B, dir string, n int) time.Duration {
	buf := bytes.Repeat([]byte{3}, 16<<20)
	f, err := os.CreateTemp(dir, "crsub-bench-baseline")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	for left := n; left > 0; left -= len(buf) {
		if _, err := f.Write(buf[:min(left, len(buf))]); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func run(b *testing.B, mib int) {
	bin := crtest.Build(b, subject)
	shm := "/dev/shm"
	if _, err := os.Stat(shm); err != nil {
		shm = b.TempDir()
	}
	bytesCopied := max(mib<<20, 4096)
	var ckptTotal, frozenTotal, restartTotal, memcpyTotal, shmTotal time.Duration
	var imageSize int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		memcpyTotal += memcpyBaseline(bytesCopied)
		shmTotal += shmWriteBaseline(b, shm, bytesCopied)
		p := crtest.Start(b, b.TempDir(), bin, strconv.Itoa(mib))
		img := filepath.Join(shm, fmt.Sprintf("crsub-bench-%d.img", p.Pid))
		f, err := os.OpenFile(img, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		st, err := checkpoint.Checkpoint(context.Background(), p.Pid, f, checkpoint.DefaultOptions())
		ckptTotal += time.Since(t0)
		b.StopTimer()
		if err != nil {
			p.Kill()
			p.Wait()
			b.Fatal(err)
		}
		frozenTotal += st.Frozen
		imageSize = st.Bytes
		p.Wait() // reap the original so its pid is free
		if _, err := f.Seek(0, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 = time.Now()
		rp, err := restart.Restart(context.Background(), f, restart.DefaultOptions())
		restartTotal += time.Since(t0)
		b.StopTimer()
		f.Close()
		os.Remove(img)
		if err != nil {
			b.Fatal(err)
		}
		if state := procState(rp.Pid); state != "S" && state != "R" {
			b.Fatalf("restored pid %d is in state %q", rp.Pid, state)
		}
		rp.Signal(syscall.SIGKILL)
		rp.Wait()
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(memcpyTotal), "memcpy-ms")
	b.ReportMetric(ms(ckptTotal), "checkpoint-ms")
	b.ReportMetric(ms(frozenTotal), "frozen-ms")
	b.ReportMetric(ms(restartTotal), "restart-ms")
	b.ReportMetric(float64(ckptTotal)/float64(memcpyTotal), "checkpoint/memcpy")
	b.ReportMetric(float64(restartTotal)/float64(memcpyTotal), "restart/memcpy")
	b.ReportMetric(ms(shmTotal), "shm-write-ms")
	b.ReportMetric(float64(ckptTotal)/float64(shmTotal), "checkpoint/shm-write")
	b.ReportMetric(float64(imageSize)/(1<<20), "image-MiB")
	b.ReportMetric(float64(int64(mib)<<20)/(float64(ckptTotal)/n)*1e9/(1<<30), "checkpoint-GiB/s")
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0]
}

func BenchmarkOnePage(b *testing.B) { run(b, 0) }

func Benchmark64MiB(b *testing.B) { run(b, 64) }

func Benchmark1GiB(b *testing.B) { run(b, 1024) }

func Benchmark4GiB(b *testing.B) { run(b, 4096) }

// TestMain keeps fds this process inherited out of the subjects.
func TestMain(m *testing.M) {
	crtest.CloseInherited()
	os.Exit(m.Run())
}

// snapshot measures the frozen time of an in-memory checkpoint of a
// process left running (crsub checkpoint --leave-running): the state is
// copied into memory prepared before the freeze, and the image written
// after the process runs again.
func snapshot(b *testing.B, mib int) { snapshotWith(b, mib, false) }

// snapshotWith is snapshot, with Options.CopyOnWrite if cow is set: the
// frozen phase forks a copy and the memory is read from it after the thaw.
func snapshotWith(b *testing.B, mib int, cow bool) {
	bin := crtest.Build(b, subject)
	var frozen, total, memcpyTotal time.Duration
	var size int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		memcpyTotal += memcpyBaseline(mib << 20)
		p := crtest.Start(b, b.TempDir(), bin, strconv.Itoa(mib))
		opts := checkpoint.DefaultOptions()
		opts.LeaveRunning = true
		opts.CopyOnWrite = cow
		b.StartTimer()
		t0 := time.Now()
		img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
		total += time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		frozen += img.Stats.Frozen
		size = img.Size()
		if state := procState(p.Pid); state != "S" && state != "R" {
			b.Fatalf("process in state %q after the snapshot", state)
		}
		p.Kill()
		p.Wait()
	}
	n := float64(b.N)
	b.ReportMetric(float64(memcpyTotal.Microseconds())/1000/n, "memcpy-ms")
	b.ReportMetric(float64(frozen.Microseconds())/1000/n, "frozen-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/n, "snapshot-ms")
	b.ReportMetric(float64(frozen)/float64(memcpyTotal), "frozen/memcpy")
	b.ReportMetric(float64(size)/(1<<20), "image-MiB")
}

func BenchmarkSnapshot64MiB(b *testing.B) { snapshot(b, 64) }

func BenchmarkSnapshot1GiB(b *testing.B) { snapshot(b, 1024) }

func BenchmarkSnapshot4GiB(b *testing.B) { snapshot(b, 4096) }

func BenchmarkSnapshotCopyOnWrite64MiB(b *testing.B) { snapshotWith(b, 64, true) }

func BenchmarkSnapshotCopyOnWrite1GiB(b *testing.B) { snapshotWith(b, 1024, true) }

func BenchmarkSnapshotCopyOnWrite4GiB(b *testing.B) { snapshotWith(b, 4096, true) }

// dirtier touches MiB mebibytes like subject; then, on each SIGUSR1, it
// writes to PERMILLE per mille of its pages (a different set each time,
// spread over the whole range) and creates the file "dirtied.N".
const dirtier = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(int argc, char **argv) {
	size_t n = (size_t)atol(argv[1]) << 20, permille = atol(argv[2]);
	unsigned char *p = malloc(n);
	for (size_t i = 0; i < n; i += 8) *(size_t *)(p + i) = i * 2654435761u;
	signal(SIGUSR1, on_usr1);
	/* SIGUSR1 stays blocked but in sigsuspend: one coming between the
	   test of go and the wait would otherwise be slept through. */
	sigset_t usr1, unblocked;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &unblocked);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	size_t pages = n / 4096, step = permille ? 1000 / permille : 0;
	for (int round = 0;; round++) {
		while (!go) sigsuspend(&unblocked);
		go = 0;
		for (size_t i = round % (step ? step : 1); step && i < pages; i += step) p[i * 4096 + 64] ^= 0x5a;
		char name[32];
		snprintf(name, sizeof name, "dirtied.%d", round);
		close(open(name, O_CREAT | O_WRONLY, 0600));
	}
}
`

// preCopy measures the frozen time of an in-memory checkpoint after
// rounds of pre-copy, with permille of the pages written between rounds
// (and between the last round and the freeze).
func preCopy(b *testing.B, mib, permille int) {
	bin := crtest.Build(b, dirtier)
	var frozen, full, memcpyTotal time.Duration
	var readFrozen uint64
	// This machine's noise comes in bursts of several milliseconds (a
	// page-table resync when the process next runs), so medians are
	// reported beside the means.
	var frozenEach, ratioEach []float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		memcpyTotal += memcpyBaseline(mib << 20)
		dir := b.TempDir()
		p := crtest.Start(b, dir, bin, strconv.Itoa(mib), strconv.Itoa(permille))
		opts := checkpoint.DefaultOptions()
		opts.LeaveRunning = true
		img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
		if err != nil {
			b.Fatal(err)
		}
		full += img.Stats.Frozen
		fullFrozen := img.Stats.Frozen
		dirtied := 0
		opts.PreCopy = 2
		opts.PreCopyRound = func(int, uint64) {
			p.Signal(syscall.SIGUSR1)
			name := filepath.Join(dir, fmt.Sprintf("dirtied.%d", dirtied))
			crtest.WaitFor(b, func() bool { _, err := os.Stat(name); return err == nil }, name)
			dirtied++
		}
		b.StartTimer()
		img, err = checkpoint.Snapshot(context.Background(), p.Pid, opts)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		frozen += img.Stats.Frozen
		frozenEach = append(frozenEach, float64(img.Stats.Frozen.Microseconds())/1000)
		ratioEach = append(ratioEach, float64(img.Stats.Frozen)/float64(fullFrozen))
		readFrozen += img.Stats.BytesRead
		p.Kill()
		p.Wait()
	}
	n := float64(b.N)
	b.ReportMetric(float64(memcpyTotal.Microseconds())/1000/n, "memcpy-ms")
	b.ReportMetric(float64(full.Microseconds())/1000/n, "full-frozen-ms")
	b.ReportMetric(float64(frozen.Microseconds())/1000/n, "frozen-ms")
	b.ReportMetric(float64(frozen)/float64(full), "frozen/full-frozen")
	b.ReportMetric(median(frozenEach), "median-frozen-ms")
	b.ReportMetric(median(ratioEach), "median-frozen/full-frozen")
	b.ReportMetric(float64(frozen)/float64(memcpyTotal), "frozen/memcpy")
	b.ReportMetric(float64(readFrozen)/n/(1<<20), "read-frozen-MiB")
}

func BenchmarkPreCopy1GiBDirty1pc(b *testing.B)  { preCopy(b, 1024, 10) }
func BenchmarkPreCopy1GiBDirty10pc(b *testing.B) { preCopy(b, 1024, 100) }
func BenchmarkPreCopy4GiBDirty1pc(b *testing.B)  { preCopy(b, 4096, 10) }
func BenchmarkPreCopy4GiBDirty10pc(b *testing.B) { preCopy(b, 4096, 100) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

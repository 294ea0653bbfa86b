package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/crtest"
)

// writer touches MiB mebibytes like subject, then runs on as a workload:
// at the start of every 100 ms it writes PERMILLE per mille of its pages
// (a different set each time, spread over the whole range), and between
// those writes it reads the clock every millisecond. The longest gap
// between two of its clock readings is how long it was stopped, as it
// sees it. On SIGUSR1 it forgets the longest gap and creates "armed.N";
// on SIGUSR2 it writes the longest gap since, in microseconds, to "gap.N".
const writer = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t arm, report;
static void on_usr1(int s) { (void)s; arm = 1; }
static void on_usr2(int s) { (void)s; report = 1; }
static long long now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static void put(const char *prefix, int n, long long v) {
	char name[64], tmp[64], text[32];
	snprintf(name, sizeof name, "%s.%d", prefix, n);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	int len = snprintf(text, sizeof text, "%lld\n", v);
	if (write(fd, text, len) != len) _exit(1);
	close(fd);
	rename(tmp, name);
}
int main(int argc, char **argv) {
	size_t n = (size_t)atol(argv[1]) << 20, permille = atol(argv[2]);
	unsigned char *p = malloc(n);
	for (size_t i = 0; i < n; i += 8) *(size_t *)(p + i) = i * 2654435761u;
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	size_t pages = n / 4096, step = permille ? 1000 / permille : 0;
	long long last = now(), gap = 0, period = last;
	int arms = 0, reports = 0;
	for (unsigned round = 0;; round++) {
		if (step) {
			for (size_t i = round % step, k = 0; i < pages; i += step, k++) {
				p[i * 4096 + 64] ^= 0x5a;
				if (k % 256 == 0) {
					long long t = now();
					if (t - last > gap) gap = t - last;
					last = t;
				}
			}
		}
		period += 100000000LL;
		for (;;) {
			long long t = now();
			if (t - last > gap) gap = t - last;
			last = t;
			if (arm) { arm = 0; gap = 0; put("armed", arms++, 0); }
			if (report) { report = 0; put("gap", reports++, gap / 1000); }
			if (t >= period) break;
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
		if (last - period > 100000000LL) period = last; /* stopped for a while: no catching up */
	}
}
`

// peak runs a command and writes its peak RSS in KiB to the file named by
// its first argument. The engines are run through it, not directly: a
// child of a Go program starts as a vfork sharing the benchmark's memory,
// and its ru_maxrss would count the benchmark's baseline buffers.
const peak = `#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
	pid_t pid = fork();
	if (pid == 0) { execv(argv[2], argv + 2); _exit(127); }
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) return 126;
	FILE *f = fopen(argv[1], "w");
	fprintf(f, "%ld\n", ru.ru_maxrss);
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
`

// workloadRun is what one checkpoint or restore of the workload measured.
type workloadRun struct {
	frozen, whole time.Duration
	// seen is the longest gap the writer saw between two of its clock
	// readings (only when it ran on).
	seen   time.Duration
	peakKB int64 // the engine's peak RSS
	stats  map[string]any
}

// workloadBench is one size of the workload: the binaries, where images
// go, and results earlier sub-benchmarks leave for later ones' ratios.
type workloadBench struct {
	mib         int
	crsub, criu string
	bin, peak   string
	shm         string
	whole       map[string]time.Duration // crsub's mean whole time by mode
}

// BenchmarkWorkload1GiB is issue 17's table: a 1 GiB process checkpointed
// by crsub in each mode (and by CRIU where env CRIU names its binary),
// each against the same run's memcpy of the same bytes.
func BenchmarkWorkload1GiB(b *testing.B) { workload(b, 1024) }

func BenchmarkWorkload64MiB(b *testing.B) { workload(b, 64) }

func workload(b *testing.B, mib int) {
	crsub := os.Getenv("CRSUB")
	if crsub == "" {
		crsub, _ = filepath.Abs("../bin/crsub")
	}
	if _, err := os.Stat(crsub); err != nil {
		b.Skipf("no crsub binary (make build, or env CRSUB): %v", err)
	}
	w := &workloadBench{mib: mib, crsub: crsub, criu: os.Getenv("CRIU"), bin: crtest.Build(b, writer), peak: crtest.Build(b, peak), shm: "/dev/shm", whole: map[string]time.Duration{}}
	if _, err := os.Stat(w.shm); err != nil {
		w.shm = b.TempDir()
	}
	b.Run("default", w.kill)
	b.Run("leave-running", func(b *testing.B) { w.running(b, "leave-running", 0, "--leave-running") })
	b.Run("copy-on-write", func(b *testing.B) { w.running(b, "copy-on-write", 0, "--leave-running", "--copy-on-write") })
	for _, permille := range []int{1, 10, 100} {
		name := fmt.Sprintf("pre-copy-%gpc", float64(permille)/10)
		b.Run(name, func(b *testing.B) { w.running(b, name, permille, "--leave-running", "--pre-copy") })
	}
}

// kill measures the default mode (the process killed once the image is
// written) and the restore of its image, by crsub and CRIU.
func (w *workloadBench) kill(b *testing.B) {
	var memcpy, frozen, whole, restore, cFrozen, cWhole, cRestore time.Duration
	var peak int64
	for range b.N {
		memcpy += memcpyBaseline(w.mib << 20)
		dir := b.TempDir()
		p := crtest.Start(b, dir, w.bin, strconv.Itoa(w.mib), "0")
		img := filepath.Join(w.shm, fmt.Sprintf("crsub-bench-%d.img", p.Pid))
		r := w.crsubCheckpoint(b, p.Pid, img)
		p.Wait()
		frozen, whole, peak = frozen+r.frozen, whole+r.whole, max(peak, r.peakKB)
		restore += w.crsubRestore(b, p.Pid, img)
		os.Remove(img)
		if w.criu == "" {
			continue
		}
		p = crtest.Start(b, b.TempDir(), w.bin, strconv.Itoa(w.mib), "0")
		imgDir := w.criuDir(b, p.Pid)
		r = w.criuDump(b, p.Pid, imgDir)
		p.Wait()
		cFrozen, cWhole = cFrozen+r.frozen, cWhole+r.whole
		cRestore += w.criuRestore(b, p.Pid, imgDir)
		os.RemoveAll(imgDir)
	}
	w.whole["default"] = whole / time.Duration(b.N)
	m := metrics{b: b, n: b.N}
	m.ms("memcpy-ms", memcpy)
	m.ms("frozen-ms", frozen)
	m.ms("whole-ms", whole)
	m.ms("restore-ms", restore)
	m.ratio("frozen/memcpy", frozen, memcpy)
	m.ratio("whole/memcpy", whole, memcpy)
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	if w.criu != "" {
		m.ms("criu-frozen-ms", cFrozen)
		m.ms("criu-whole-ms", cWhole)
		m.ms("criu-restore-ms", cRestore)
		m.ratio("whole/criu-whole", whole, cWhole)
		m.ratio("restore/criu-restore", restore, cRestore)
	}
}

// running measures a mode that lets the process run on, the writer
// writing permille of its pages per 100 ms all the while: the frozen time
// the writer saw, crsub's own count of it, and the whole checkpoint.
func (w *workloadBench) running(b *testing.B, mode string, permille int, flags ...string) {
	var memcpy, seen, frozen, whole, cSeen, cWhole time.Duration
	var peak int64
	var rounds, copied, written float64
	criu := w.criu != "" && permille == 0 // CRIU has no pre-copy on this kernel (no soft-dirty bits)
	for range b.N {
		memcpy += memcpyBaseline(w.mib << 20)
		dir := b.TempDir()
		p := crtest.Start(b, dir, w.bin, strconv.Itoa(w.mib), strconv.Itoa(permille))
		img := filepath.Join(w.shm, fmt.Sprintf("crsub-bench-%d.img", p.Pid))
		arm(b, p, dir)
		r := w.crsubCheckpoint(b, p.Pid, img, flags...)
		r.seen = gapSeen(b, p, dir)
		os.Remove(img)
		p.Kill()
		p.Wait()
		seen, frozen, whole, peak = seen+r.seen, frozen+r.frozen, whole+r.whole, max(peak, r.peakKB)
		for _, round := range asSlice(r.stats["pre_copy"]) {
			rounds++
			copied += asFloat(round["pages_copied"])
			written += asFloat(round["pages_written"])
		}
		if !criu {
			continue
		}
		dir = b.TempDir()
		p = crtest.Start(b, dir, w.bin, strconv.Itoa(w.mib), strconv.Itoa(permille))
		imgDir := w.criuDir(b, p.Pid)
		arm(b, p, dir)
		r = w.criuDump(b, p.Pid, imgDir, "--leave-running")
		r.seen = gapSeen(b, p, dir)
		p.Kill()
		p.Wait()
		os.RemoveAll(imgDir)
		cSeen, cWhole = cSeen+r.seen, cWhole+r.whole
	}
	w.whole[mode] = whole / time.Duration(b.N)
	m := metrics{b: b, n: b.N}
	m.ms("memcpy-ms", memcpy)
	m.ms("frozen-seen-ms", seen)
	m.ms("frozen-ms", frozen)
	m.ms("whole-ms", whole)
	m.ratio("frozen-seen/memcpy", seen, memcpy)
	m.ratio("whole/memcpy", whole, memcpy)
	if d := w.whole["default"]; d > 0 {
		m.ratio("whole/default-whole", whole/time.Duration(b.N), d)
	}
	if full := w.whole["leave-running"]; full > 0 && permille > 0 {
		m.ratio("whole/leave-running-whole", whole/time.Duration(b.N), full)
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	if rounds > 0 {
		n := float64(b.N)
		b.ReportMetric(rounds/n, "rounds")
		b.ReportMetric(copied/n, "pages-copied-in-rounds")
		b.ReportMetric(written/n, "pages-written-in-rounds")
	}
	if criu {
		m.ms("criu-frozen-seen-ms", cSeen)
		m.ms("criu-whole-ms", cWhole)
		m.ratio("frozen-seen/criu-frozen-seen", seen, cSeen)
		m.ratio("whole/criu-whole", whole, cWhole)
	}
}

type metrics struct {
	b *testing.B
	n int
}

func (m metrics) ms(unit string, total time.Duration) {
	m.b.ReportMetric(float64(total.Microseconds())/1000/float64(m.n), unit)
}

func (m metrics) ratio(unit string, a, b time.Duration) {
	if b > 0 {
		m.b.ReportMetric(float64(a)/float64(b), unit)
	}
}

// crsubCheckpoint runs crsub checkpoint of pid into img with flags.
func (w *workloadBench) crsubCheckpoint(b *testing.B, pid int, img string, flags ...string) workloadRun {
	args := append([]string{"checkpoint", "--pid", strconv.Itoa(pid), "-o", img, "-q", "--stats", "json"}, flags...)
	stderr, r := w.command(b, w.crsub, args...)
	// The JSON is the last line; warnings may come before it.
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r.stats); err != nil {
		b.Fatalf("crsub --stats json: %v in %q", err, stderr)
	}
	r.frozen = time.Duration(asFloat(r.stats["frozen_ns"]))
	return r
}

// crsubRestore restarts img, detached, checks the process runs and kills
// it, and returns how long the restart took.
func (w *workloadBench) crsubRestore(b *testing.B, pid int, img string) time.Duration {
	_, r := w.command(b, w.crsub, "restart", "-i", img, "--detach")
	killRestored(b, pid)
	return r.whole
}

func (w *workloadBench) criuDir(b *testing.B, pid int) string {
	dir := filepath.Join(w.shm, fmt.Sprintf("crsub-bench-criu-%d", pid))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	return dir
}

var criuFrozen = regexp.MustCompile(`Frozen time: (\d+) us`)

// criuDump runs criu dump of pid into dir with flags.
func (w *workloadBench) criuDump(b *testing.B, pid int, dir string, flags ...string) workloadRun {
	args := append([]string{"dump", "-t", strconv.Itoa(pid), "-D", dir, "-o", "dump.log", "--display-stats"}, flags...)
	out, r := w.command(b, w.criu, args...)
	if m := criuFrozen.FindStringSubmatch(out); m != nil {
		us, _ := strconv.Atoi(m[1])
		r.frozen = time.Duration(us) * time.Microsecond
	}
	return r
}

func (w *workloadBench) criuRestore(b *testing.B, pid int, dir string) time.Duration {
	_, r := w.command(b, w.criu, "restore", "-D", dir, "-o", "restore.log", "-d")
	killRestored(b, pid)
	return r.whole
}

// command runs an engine and returns its output (both streams) and how
// long it took, with its peak RSS.
func (w *workloadBench) command(b *testing.B, bin string, args ...string) (string, workloadRun) {
	rss := filepath.Join(b.TempDir(), "peak-rss")
	cmd := exec.Command(w.peak, append([]string{rss, bin}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	r := workloadRun{whole: time.Since(t0)}
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out.String())
	}
	if text, err := os.ReadFile(rss); err == nil {
		r.peakKB, _ = strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
	}
	return out.String(), r
}

// killRestored checks the restored pid runs, kills it and waits until it
// is gone (it is not this process's child).
func killRestored(b *testing.B, pid int) {
	if state := procState(pid); state != "S" && state != "R" {
		b.Fatalf("restored pid %d is in state %q", pid, state)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	crtest.WaitFor(b, func() bool { return crtest.Gone(pid) }, "restored process gone")
}

// arm has the writer forget its longest gap so far.
func arm(b *testing.B, p *os.Process, dir string) {
	n := countFiles(dir, "armed.")
	p.Signal(syscall.SIGUSR1)
	name := filepath.Join(dir, fmt.Sprintf("armed.%d", n))
	crtest.WaitFor(b, func() bool { _, err := os.Stat(name); return err == nil }, name)
}

// gapSeen asks the writer for its longest gap since arm.
func gapSeen(b *testing.B, p *os.Process, dir string) time.Duration {
	n := countFiles(dir, "gap.")
	p.Signal(syscall.SIGUSR2)
	text := crtest.WaitForReport(b, p.Pid, filepath.Join(dir, fmt.Sprintf("gap.%d", n)), time.Minute)
	us, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(us) * time.Microsecond
}

func countFiles(dir, prefix string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && !strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

func asFloat(v any) float64 {
	f, _ := v.(float64)
	return f
}

func asSlice(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

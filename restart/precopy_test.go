package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
)

// writer keeps rewriting random pages of a 64 MiB region while it runs;
// each page holds its generation and a fill derived from it, the
// generations live in an array of their own. On SIGUSR1 it checks every
// page (but the one it is in the middle of) against its generation and
// writes "ok N" or "bad ..." to the file "verdict".
const writer = `#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#define PAGE 4096
static unsigned char *region;
static size_t npages;
static volatile uint64_t *gen;
static volatile long current = -1;
static volatile sig_atomic_t check;
static uint64_t fill(size_t i, uint64_t g) { return (i + 1) * 0x9E3779B97F4A7C15ull ^ g * 0xD1B54A32D192ED03ull; }
static void on_usr1(int s) { (void)s; check = 1; }
static void verify(void) {
	size_t bad = 0, first = 0, written = 0;
	for (size_t i = 0; i < npages; i++) {
		uint64_t *p = (uint64_t *)(region + i * PAGE);
		uint64_t want = fill(i, gen[i]);
		int ok = p[0] == gen[i];
		for (size_t k = 1; ok && k < PAGE / 8; k++) ok = p[k] == want + k;
		if (!ok && bad++ == 0) first = i;
		written += gen[i] != 0;
	}
	FILE *f = fopen("verdict.tmp", "w");
	if (bad) fprintf(f, "bad %zu pages, first %zu\n", bad, first);
	else fprintf(f, "ok %zu pages, %zu rewritten\n", npages, written);
	fclose(f);
	rename("verdict.tmp", "verdict");
}
int main(int argc, char **argv) {
	npages = ((size_t)atol(argv[1]) << 20) / PAGE;
	region = aligned_alloc(PAGE, npages * PAGE);
	gen = calloc(npages, sizeof *gen);
	for (size_t i = 0; i < npages; i++) {
		uint64_t *p = (uint64_t *)(region + i * PAGE);
		p[0] = 0;
		for (size_t k = 1; k < PAGE / 8; k++) p[k] = fill(i, 0) + k;
	}
	signal(SIGUSR1, on_usr1);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	uint64_t x = 88172645463325252ull;
	for (;;) {
		if (check) { check = 0; verify(); }
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		size_t i = x % npages;
		current = i;
		__asm__ volatile("" ::: "memory");
		uint64_t g = gen[i] + 1;
		gen[i] = g;
		uint64_t *p = (uint64_t *)(region + i * PAGE);
		p[0] = g;
		uint64_t want = fill(i, g);
		for (size_t k = 1; k < PAGE / 8; k++) p[k] = want + k;
		__asm__ volatile("" ::: "memory");
		current = -1;
		if ((x & 15) == 0) usleep(200);
	}
}
`

func verdict(t *testing.T, pid int, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "verdict")
	os.Remove(path)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { _, err := os.Stat(path); return err == nil }, "the verdict of pid "+strconv.Itoa(pid))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A process that keeps writing its memory is checkpointed with pre-copy
// rounds: the pages it wrote during and after the rounds must be the ones
// in the image. The restored process checks every page itself.
func TestPreCopyWhileWriting(t *testing.T) {
	crtest.RequireRoot(t)
	for _, leave := range []bool{true, false} {
		name := "kill"
		if leave {
			name = "leave-running"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, crtest.Build(t, writer), "64")
			time.Sleep(100 * time.Millisecond) // some pages rewritten already
			opts := checkpoint.DefaultOptions()
			opts.PreCopy = 3
			opts.LeaveRunning = leave
			rounds := 0
			opts.PreCopyRound = func(round int, bytes uint64) {
				rounds++
				if round == 1 && bytes < 60<<20 {
					t.Errorf("the first round copied %d bytes of a 64 MiB process", bytes)
				}
				time.Sleep(20 * time.Millisecond) // writes between rounds
			}
			img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
			if err != nil {
				p.Kill()
				p.Wait()
				t.Fatal(err)
			}
			st := img.Stats
			if rounds != 3 || st.PreCopyRounds != 3 {
				t.Errorf("%d rounds reported, %d in stats; want 3", rounds, st.PreCopyRounds)
			}
			if st.PagesPreCopied < 8192 || st.BytesRead >= 32<<20 {
				t.Errorf("frozen phase took %d pages from the rounds and read %d bytes: the rounds did not spare it the copy", st.PagesPreCopied, st.BytesRead)
			}
			if leave {
				// Tracking goes, in the background (paced not to stop the
				// process): soon no page of the original is still
				// write-protected, and its memory is intact.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					page, protected := writeProtected(t, p.Pid)
					if !protected {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("page %#x of the original is still write-protected 10 s after the checkpoint", page)
					}
				}
				if v := verdict(t, p.Pid, dir); !strings.HasPrefix(v, "ok") {
					t.Fatalf("the original after the checkpoint: %s", v)
				}
				p.Kill()
			}
			p.Wait()
			checkVerdict(t, restartFrom(t, img.Reader()), dir, st)
		})
	}
}

// writeProtected returns a page of pid that is still write-protected by a
// userfaultfd, if any.
func writeProtected(t *testing.T, pid int) (uint64, bool) {
	t.Helper()
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	for _, m := range maps {
		entries, err := procfs.ReadPagemap(pm, m.Start, m.End, nil)
		if err != nil {
			continue
		}
		for i, e := range entries {
			if procfs.PagemapEntry(e).UffdWP() {
				return m.Start + uint64(i)*4096, true
			}
		}
	}
	return 0, false
}

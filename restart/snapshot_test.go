package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
)

// holes fills a 40 MiB region page by page, every fifth page with zeros
// (written, so present) and the others with a pattern of their index; the
// region is shared anonymous memory if the first argument is "shared". On
// SIGUSR1 it checks every page and writes "ok N" or "bad ..." to "verdict".
const holes = `#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define PAGE 4096
#define NPAGES (40 << 20) / PAGE
static volatile sig_atomic_t check;
static void on_usr1(int s) { (void)s; check = 1; }
static uint64_t word(size_t i, size_t k) { return (i + 1) * 0x9E3779B97F4A7C15ull + k; }
int main(int argc, char **argv) {
	int shared = argc > 1 && !strcmp(argv[1], "shared");
	uint64_t *region = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) return 1;
	for (size_t i = 0; i < NPAGES; i++) {
		uint64_t *p = region + i * (PAGE / 8);
		if (i % 5 == 0) memset(p, 0, PAGE);
		else for (size_t k = 0; k < PAGE / 8; k++) p[k] = word(i, k);
	}
	signal(SIGUSR1, on_usr1);
	/* SIGUSR1 is taken only inside sigsuspend: one arriving as a
	   restored pause() restarts would run its handler and leave the
	   process waiting again. */
	sigset_t usr1, wait;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &wait);
	sigdelset(&wait, SIGUSR1);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		while (!check) sigsuspend(&wait);
		check = 0;
		size_t bad = 0, first = 0;
		for (size_t i = 0; i < NPAGES; i++) {
			uint64_t *p = region + i * (PAGE / 8);
			int ok = 1;
			for (size_t k = 0; ok && k < PAGE / 8; k++) ok = p[k] == (i % 5 == 0 ? 0 : word(i, k));
			if (!ok && bad++ == 0) first = i;
		}
		FILE *f = fopen("verdict.tmp", "w");
		if (bad) fprintf(f, "bad %zu pages, first %zu\n", bad, first);
		else fprintf(f, "ok %d pages\n", NPAGES);
		fclose(f);
		rename("verdict.tmp", "verdict");
	}
}
`

// An in-memory snapshot reads the pages straight into the image's memory,
// several chunks at once, and leaves out the zero pages: a region spanning
// several chunks, every fifth page zeros, comes back page for page (checked
// by the restored process), and the zero pages are not stored. The same
// for shared memory, read from its object, and for a snapshot on top of a
// parent image, which stores only what changed since: nothing of the
// region.
func TestSnapshotZeroPagesAcrossChunks(t *testing.T) {
	crtest.RequireRoot(t)
	const pages = 40 << 20 / 4096
	for _, tc := range []struct {
		name, arg, parent string
		stored            uint64 // of the region
	}{
		{name: "private", arg: "private", stored: pages * 4 / 5},
		{name: "shared", arg: "shared", stored: pages * 4 / 5},
		{name: "parent", arg: "private", parent: "base.img"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, crtest.Build(t, holes), tc.arg)
			defer func() { p.Kill(); p.Wait() }()
			opts := checkpoint.DefaultOptions()
			opts.LeaveRunning = true
			if tc.parent != "" {
				path := filepath.Join(dir, tc.parent)
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				crtest.WaitBlocked(t, p.Pid)
				_, err = checkpoint.Checkpoint(context.Background(), p.Pid, f, opts)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				opts.Parent = path
			}
			crtest.WaitBlocked(t, p.Pid)
			img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
			if err != nil {
				t.Fatal(err)
			}
			p.Kill()
			p.Wait()
			// The region's pages, and a few of the program's own.
			if st := img.Stats; st.PagesStored < tc.stored || st.PagesStored > tc.stored+200 {
				t.Errorf("%d pages stored, want the region's %d and a few more", st.PagesStored, tc.stored)
			}
			if v := verdict(t, restartFrom(t, img.Reader()).Pid, dir); !strings.HasPrefix(v, "ok") {
				t.Fatalf("restored process: %s", v)
			}
		})
	}
}

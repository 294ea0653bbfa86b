package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
)

// pattern fills 24 MiB with a pattern of each page's index; on SIGUSR1 it
// checks every page and writes "ok" or "bad N" to the file "verdict".
const pattern = `#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#define WORDS ((24 << 20) / 8)
static volatile sig_atomic_t check;
static void on_usr1(int s) { (void)s; check = 1; }
int main(void) {
	uint64_t *region = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) return 1;
	for (size_t i = 0; i < WORDS; i++) region[i] = i * 0x9E3779B97F4A7C15ull + 1;
	signal(SIGUSR1, on_usr1);
	/* SIGUSR1 is taken only inside sigsuspend, so none is lost between
	   the test of the flag and the wait. */
	sigset_t usr1, wait;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &wait);
	sigdelset(&wait, SIGUSR1);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		while (!check) sigsuspend(&wait);
		check = 0;
		size_t bad = 0;
		for (size_t i = 0; i < WORDS; i++) bad += region[i] != i * 0x9E3779B97F4A7C15ull + 1;
		FILE *f = fopen("verdict.tmp", "w");
		fprintf(f, bad ? "bad %zu\n" : "ok\n", bad);
		fclose(f);
		rename("verdict.tmp", "verdict");
	}
}
`

// An in-memory image whose page store runs out part way (the process grew
// since it was sized) reads the rest through copy buffers made then: the
// restored process finds every page as it was.
func TestPageStoreRunsOut(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, pattern))
	defer func() { p.Kill(); p.Wait() }()
	// Room for one 16 MiB chunk of the region's 24 MiB, and a little.
	w := newMemoryWriter(20<<20, 4<<20)
	opts := DefaultOptions()
	opts.LeaveRunning = true
	crtest.WaitBlocked(t, p.Pid)
	if _, err := Checkpoint(context.Background(), p.Pid, w, opts); err != nil {
		t.Fatal(err)
	}
	if err := w.resolve(); err != nil {
		t.Fatal(err)
	}
	if w.pages.used[0] < 16<<20 {
		t.Fatalf("the store served %d bytes: it did not take the first chunk", w.pages.used[0])
	}
	p.Kill()
	p.Wait()
	rp, err := restart.Restart(context.Background(), w.im.Reader(), restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	path := filepath.Join(dir, "verdict")
	if err := rp.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { _, err := os.Stat(path); return err == nil }, "the verdict")
	if v, _ := os.ReadFile(path); !strings.HasPrefix(string(v), "ok") {
		t.Fatalf("restored process: %s", v)
	}
}

package checkpoint

import (
	"bytes"
	"context"
	"io"
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

// An in-memory image whose page store was sized too small (the process
// grew since) holds every page all the same, and the restored process
// finds each as it was: the memory file grows past what was allocated;
// touched memory that runs out part way has the rest read through copy
// buffers made then. The memory file's image reads the same whether it is
// written out to a file (sendfile) or to memory.
func TestPageStoreRunsOut(t *testing.T) {
	crtest.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		touched bool // the store is touched memory, not a memory file
	}{
		{"memory file", false},
		{"touched memory", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, crtest.Build(t, pattern))
			defer func() { p.Kill(); p.Wait() }()
			// Room for one 16 MiB chunk of the region's 24 MiB, and a little.
			w := newMemoryWriter(20<<20, 4<<20)
			if w.file == nil {
				t.Fatalf("no memory file: %v", w.noFile)
			}
			if tc.touched {
				w.file.Close()
				w.file, w.im.file, w.pages = nil, nil, newPageStore(20<<20)
			}
			opts := DefaultOptions()
			opts.LeaveRunning = true
			crtest.WaitBlocked(t, p.Pid)
			if _, err := Checkpoint(context.Background(), p.Pid, w, opts); err != nil {
				t.Fatal(err)
			}
			if err := w.resolve(); err != nil {
				t.Fatal(err)
			}
			var held int64
			for _, r := range w.im.ranges {
				held += r.n
			}
			switch {
			case tc.touched && w.pages.used[0] < 16<<20:
				t.Fatalf("the store served %d bytes: it did not take the first chunk", w.pages.used[0])
			case !tc.touched && held < 24<<20:
				t.Fatalf("the memory file holds %d bytes of pages, want the region's %d", held, 24<<20)
			}
			p.Kill()
			p.Wait()
			img := w.im.Reader()
			if !tc.touched {
				img = writtenOut(t, w.im)
			}
			rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
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
		})
	}
}

// writtenOut writes im to a file and to memory, checks the two and the
// image's Reader agree, and returns a reader of the file.
func writtenOut(t *testing.T, im *Image) io.Reader {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if n, err := im.WriteTo(f); err != nil || n != im.Size() {
		t.Fatalf("WriteTo(file) = %d, %v; want %d bytes", n, err, im.Size())
	}
	var mem bytes.Buffer
	if _, err := im.WriteTo(&mem); err != nil {
		t.Fatal(err)
	}
	read, err := io.ReadAll(im.Reader())
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, mem.Bytes()) || !bytes.Equal(read, mem.Bytes()) {
		t.Fatalf("the image written to a file (%d bytes), to memory (%d) and read (%d) differ", len(file), mem.Len(), len(read))
	}
	return bytes.NewReader(file)
}

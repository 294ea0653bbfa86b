package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// fifoTwice opens the FIFO "fifo" twice, in separate open files: read-write
// at fd 5 (the first fd on it, whose record the FIFO's came with before
// the FIFO's bytes were the FIFO's own), read-only at fd 6, and leaves
// "queued" buffered in it. On SIGUSR1 it reads what fd 6 gets, without
// blocking, into "report".
const fifoTwice = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	if (mkfifo("fifo", 0600)) return 1;
	int rw = open("fifo", O_RDWR), ro = open("fifo", O_RDONLY | O_NONBLOCK);
	if (rw < 0 || ro < 0 || dup2(rw, 5) < 0 || dup2(ro, 6) < 0) return 2;
	close(rw), close(ro);
	if (write(5, "queued", 6) != 6) return 3;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	char buf[64];
	ssize_t n = read(6, buf, sizeof buf);
	int out = open("report", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (n > 0) write(out, buf, n);
	close(out);
	for (;;) pause();
}
`

// A FIFO's buffered bytes belong to the FIFO: replacing the first fd on it
// with a substitute leaves them for the other fd that keeps it, which reads
// them after the restart.
func TestFIFOBytesOutliveSubstitutedFd(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, fifoTwice))
	crtest.WaitBlocked(t, p.Pid)
	img := checkpointToMemory(t, p)
	opts := restart.DefaultOptions()
	opts.Substitutes = map[int]substitute.Source{5: mustParse(t, "null")}
	rp, err := restart.Restart(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	fd := func(n int) string {
		target, _ := os.Readlink("/proc/" + strconv.Itoa(rp.Pid) + "/fd/" + strconv.Itoa(n))
		return target
	}
	if got := fd(5); got != os.DevNull {
		t.Errorf("fd 5 is %q, want the substitute %s", got, os.DevNull)
	}
	if got, want := fd(6), filepath.Join(dir, "fifo"); got != want {
		t.Errorf("fd 6 is %q, want the FIFO %s", got, want)
	}
	rp.Signal(syscall.SIGUSR1)
	if got := string(crtest.WaitForReport(t, rp.Pid, filepath.Join(dir, "report"), 10*time.Second)); got != "queued" {
		t.Errorf("fd 6 read %q from the FIFO, want %q", got, "queued")
	}
}

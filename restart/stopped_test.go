package restart_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/crtest"
)

// ticker appends a line to the file "ticks" every 10 ms.
const ticker = `#include <fcntl.h>
#include <unistd.h>
int main(void) {
	int fd = open("ticks", O_WRONLY | O_CREAT | O_APPEND, 0600);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		write(fd, "tick\n", 5);
		usleep(10000);
	}
}
`

// A process stopped by SIGSTOP when checkpointed comes back stopped, and
// goes on when continued.
func TestStoppedProcessStaysStopped(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, ticker))
	p.Signal(syscall.SIGSTOP)
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(p.Pid, "State"), "T") }, "the stop")
	rp := checkpointAndRestart(t, p)
	ticks := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "ticks"))
		return len(b)
	}
	n := ticks()
	time.Sleep(100 * time.Millisecond)
	if st := crtest.Status(rp.Pid, "State"); !strings.HasPrefix(st, "T") || ticks() != n {
		t.Fatalf("restored process in state %q, %d -> %d bytes of ticks: want it stopped", st, n, ticks())
	}
	rp.Signal(syscall.SIGCONT)
	crtest.WaitFor(t, func() bool { return ticks() > n }, "ticks after SIGCONT")
}

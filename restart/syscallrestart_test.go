package restart_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
)

// interruptedSubject sleeps in one blocking call, chosen by its argument,
// that a SIGUSR1 handler is meant to end:
//   - pause: loops on pause() until the handler has set a flag;
//   - sigsuspend: the same with SIGUSR1 blocked outside sigsuspend;
//   - read: reads a pipe whose write end it keeps (fd 5); the handler
//     writes "x" into it, so the read returns one byte;
//   - nanosleep: sleeps 30 s unless interrupted.
//
// It reports how the call ended ("woke", "read 1 x", "eintr") to
// "report". Without a signal, the call must go on sleeping.
const interruptedSubject = `#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t go;
static int pipefd[2];
static void on_usr1(int s) { (void)s; go = 1; if (write(pipefd[1], "x", 1) < 0) _exit(3); }
static void report(const char *what) {
	FILE *f = fopen("report.tmp", "w");
	fputs(what, f);
	fclose(f);
	rename("report.tmp", "report");
}
int main(int argc, char **argv) {
	if (argc < 2 || pipe(pipefd)) return 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART */
	char buf[64];
	if (!strcmp(argv[1], "pause")) {
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		while (!go) pause();
		report("woke");
	} else if (!strcmp(argv[1], "sigsuspend")) {
		sigset_t usr1, old;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr1, &old);
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		while (!go) sigsuspend(&old);
		sigset_t now;
		sigprocmask(SIG_BLOCK, NULL, &now);
		report(sigismember(&now, SIGUSR1) ? "woke" : "woke, mask lost");
	} else if (!strcmp(argv[1], "read")) {
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		ssize_t n;
		do n = read(pipefd[0], buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		snprintf(buf + 32, 32, n < 0 ? "read error %d" : "read %zd %c", n < 0 ? errno : n, buf[0]);
		report(buf + 32);
	} else if (!strcmp(argv[1], "nanosleep")) {
		struct timespec ts = { 30, 0 };
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		int r = nanosleep(&ts, &ts);
		snprintf(buf, sizeof buf, r == 0 ? "slept" : errno == EINTR ? "eintr" : "error %d", errno);
		report(buf);
	}
	for (;;) pause();
}
`

// A signal that reaches a restored thread before it is back in the call it
// was frozen in ends that call as it would have ended it without the
// checkpoint: pause and sigsuspend return to the loop that checks the
// handler's flag (they were run again after the handler, a lost wakeup:
// the CI saw it once), a read without SA_RESTART returns EINTR and is
// retried, nanosleep returns EINTR. The signal is sent while the restored
// threads are still held, the surest way into that window.
func TestSignalBeforeInterruptedCallResumes(t *testing.T) {
	crtest.RequireRoot(t)
	bin := crtest.Build(t, interruptedSubject)
	for _, tc := range []struct{ call, want string }{
		{"pause", "woke"},
		{"sigsuspend", "woke"},
		{"read", "read 1 x"},
		{"nanosleep", "eintr"},
	} {
		t.Run(tc.call, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin, tc.call)
			crtest.WaitBlocked(t, p.Pid)
			img := checkpointToMemory(t, p)
			opts := restart.DefaultOptions()
			opts.BeforeRelease = func(pids []int) error { return syscall.Kill(pids[0], syscall.SIGUSR1) }
			rp, err := restart.Restart(context.Background(), img, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rp.Signal(syscall.SIGKILL); rp.Wait() })
			if got := waitReport(t, rp, dir); got != tc.want {
				t.Fatalf("after a signal at release the subject reports %q, want %q", got, tc.want)
			}
		})
	}
}

// Without a signal the interrupted call goes on: the restored thread is
// back asleep in it, and it completes as it would have.
func TestInterruptedCallResumes(t *testing.T) {
	crtest.RequireRoot(t)
	bin := crtest.Build(t, interruptedSubject)
	for _, call := range []string{"pause", "sigsuspend", "read", "nanosleep"} {
		t.Run(call, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin, call)
			crtest.WaitBlocked(t, p.Pid)
			rp := checkpointAndRestart(t, p)
			crtest.WaitBlocked(t, rp.Pid)
			time.Sleep(100 * time.Millisecond)
			if b, err := os.ReadFile(filepath.Join(dir, "report")); err == nil {
				t.Fatalf("the restored subject left its %s at once: %q", call, b)
			}
			if state := crtest.Status(rp.Pid, "State"); !strings.HasPrefix(state, "S") {
				t.Fatalf("restored subject in %s is %q, want asleep", call, state)
			}
		})
	}
}

func waitReport(t *testing.T, rp *restart.Process, dir string) string {
	t.Helper()
	return string(bytes.TrimSpace(crtest.WaitForReport(t, rp.Pid, filepath.Join(dir, "report"), 20*time.Second)))
}

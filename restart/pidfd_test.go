package restart_test

import (
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// pidfdHolder holds a pidfd of its child at fd 5 (opened before the child
// exists at restart: a parent's fds come before its children) and one of
// itself at fd 6, non-blocking. On SIGUSR1 it signals the child through
// fd 5, waits for it through the pidfd (poll, then waitid P_PIDFD), checks
// fd 6 still names itself, and reports.
const pidfdHolder = `#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	pid_t child = fork();
	if (child == 0) { for (;;) pause(); }
	int c = syscall(SYS_pidfd_open, child, 0), self = syscall(SYS_pidfd_open, getpid(), O_NONBLOCK);
	if (c < 0 || self < 0 || dup2(c, 5) < 0 || dup2(self, 6) < 0) return 1;
	close(c), close(self);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	int sent = syscall(SYS_pidfd_send_signal, 5, SIGTERM, NULL, 0);
	struct pollfd p = { 5, POLLIN, 0 };
	int readable = poll(&p, 1, 5000);
	siginfo_t si = { 0 };
	int waited = waitid(P_PIDFD, 5, &si, WEXITED);
	int alive = syscall(SYS_pidfd_send_signal, 6, 0, NULL, 0);
	FILE *f = fopen("report.tmp", "w");
	fprintf(f, "sent=%d readable=%d waited=%d pid=%s status=%d self=%d nonblock=%d", sent, readable, waited,
		si.si_pid == child ? "child" : "other", si.si_status, alive, !!(fcntl(6, F_GETFL) & O_NONBLOCK));
	fclose(f);
	rename("report.tmp", "report");
	for (;;) pause();
}
`

// pidfds of processes in the tree still name them after restart: the child
// is signalled and reaped through its pidfd, the process's own pidfd
// signals itself.
func TestPidfds(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, pidfdHolder))
	rp := checkpointAndRestart(t, p)
	const want = "sent=0 readable=1 waited=0 pid=child status=15 self=0 nonblock=1"
	if got := askReport(t, rp, dir, "report"); got != want {
		t.Fatalf("restored pidfds: %q, want %q", got, want)
	}
}

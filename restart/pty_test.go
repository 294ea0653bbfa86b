package restart_test

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
)

// ptySession is a terminal emulator in miniature. The parent holds a pty's
// master; its child is a session on the slave (its controlling terminal,
// on fds 0-2) with echo off, a 33x111 window, and a SIGINT handler. The
// child also holds /dev/tty at fd 7, as less does. It answers each line:
// "stat" with its terminal's state (window, echo, whether its group is the
// foreground one and the terminal its session's), "tty" with "devtty:ok"
// written through fd 7, anything else with "got:LINE"; SIGINT with
// "sigint". On
// SIGUSR1 the parent talks to it through the master (a line, "stat", and
// ^C, which only reaches the child through the line discipline if the
// terminal is its controlling terminal with its group in the foreground)
// and writes the answers to "report", with the lock and packet mode of two
// more masters it holds (one never unlocked, one in packet mode).
const ptySession = `#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go, intr;
static void on_usr1(int s) { (void)s; go = 1; }
static void on_int(int s) { (void)s; intr = 1; }
static int master;
/* Reads from the master until want shows up (5 s at most); returns the
   line it is on, without the \r\n. */
static char *expect(const char *want) {
	static char buf[4096];
	size_t n = 0;
	buf[0] = 0;
	while (!strstr(buf, want)) {
		struct pollfd p = { master, POLLIN, 0 };
		if (poll(&p, 1, 5000) <= 0) return "timeout";
		ssize_t k = read(master, buf + n, sizeof buf - 1 - n);
		if (k <= 0) return "eof";
		n += k;
		buf[n] = 0;
	}
	char *at = strstr(buf, want), *end = strpbrk(at, "\r\n");
	if (end) *end = 0;
	return at;
}
static void child(const char *name) {
	setsid();
	int s = open(name, O_RDWR); /* becomes the controlling terminal */
	if (s < 0) _exit(1);
	dup2(s, 0), dup2(s, 1), dup2(s, 2);
	if (s > 2) close(s);
	struct termios t;
	tcgetattr(0, &t);
	t.c_lflag &= ~ECHO;
	tcsetattr(0, TCSANOW, &t);
	struct winsize ws = { 33, 111, 0, 0 };
	ioctl(0, TIOCSWINSZ, &ws);
	int tty = open("/dev/tty", O_RDWR); /* as less does, for the keyboard */
	if (tty < 0 || dup2(tty, 7) < 0) _exit(4);
	close(tty);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_int; /* no SA_RESTART: the read returns */
	sigaction(SIGINT, &sa, NULL);
	printf("up\n");
	fflush(stdout);
	char line[256];
	for (;;) {
		if (intr) { intr = 0; printf("sigint\n"); fflush(stdout); }
		if (!fgets(line, sizeof line, stdin)) { clearerr(stdin); continue; }
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, "tty")) {
			dprintf(7, "devtty:%s\n", isatty(7) ? "ok" : "not a terminal");
			continue;
		}
		if (!strcmp(line, "stat")) {
			struct winsize w;
			ioctl(0, TIOCGWINSZ, &w);
			tcgetattr(0, &t);
			printf("stat:rows=%d cols=%d echo=%d fg=%d ctty=%d\n", w.ws_row, w.ws_col, !!(t.c_lflag & ECHO),
				tcgetpgrp(0) == getpgrp(), tcgetsid(0) == getsid(0));
		} else {
			printf("got:%s\n", line);
		}
		fflush(stdout);
	}
}
int main(void) {
	signal(SIGUSR1, on_usr1);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master)) return 1;
	char *name = ptsname(master);
	if (fork() == 0) child(name);
	if (strcmp(expect("up"), "up")) return 2;
	/* Two more masters: one never unlocked, one in packet mode. */
	int locked = posix_openpt(O_RDWR | O_NOCTTY), packet = posix_openpt(O_RDWR | O_NOCTTY), one = 1;
	if (locked < 0 || packet < 0 || unlockpt(packet) || ioctl(packet, TIOCPKT, &one)) return 3;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	char got[4][128];
	write(master, "hello\n", 6);
	snprintf(got[0], sizeof got[0], "%s", expect("got:"));
	write(master, "stat\n", 5);
	snprintf(got[1], sizeof got[1], "%s", expect("stat:"));
	write(master, "tty\n", 4);
	snprintf(got[3], sizeof got[3], "%s", expect("devtty:"));
	write(master, "\x03", 1);
	snprintf(got[2], sizeof got[2], "%s", expect("sigint"));
	int lk = -1, pk = -1;
	ioctl(locked, TIOCGPTLCK, &lk);
	ioctl(packet, TIOCGPKT, &pk);
	FILE *f = fopen("report.tmp", "w");
	fprintf(f, "%s %s %s %s locked=%d packet=%d", got[0], got[1], got[3], got[2], lk, pk);
	fclose(f);
	rename("report.tmp", "report");
	for (;;) pause();
}
`

const ptyWant = "got:hello stat:rows=33 cols=111 echo=0 fg=1 ctty=1 devtty:ok sigint locked=1 packet=1"

// A pty held inside the tree, master in one process and a session on its
// slave in another, comes back as a new pair: the session still has it as
// its controlling terminal with its group in the foreground (^C written to
// the master interrupts it), and keeps its settings.
func TestPtyPairInsideTheTree(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, ptySession))
	rp := checkpointAndRestart(t, p)
	// From outside: the child's session has a pts as its terminal, the
	// same device its stdin is.
	if len(rp.Pids) != 2 {
		t.Fatalf("restored pids %v, want parent and child", rp.Pids)
	}
	st, err := procfs.ReadStat(rp.Pids[1])
	if err != nil {
		t.Fatal(err)
	}
	var in unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/0", rp.Pids[1]), &in); err != nil {
		t.Fatal(err)
	}
	if major := unix.Major(in.Rdev); major < 136 || major > 143 || uint64(st.TtyNr) != in.Rdev {
		t.Fatalf("restored child: stdin is device %d:%d, controlling terminal %#x", major, unix.Minor(in.Rdev), st.TtyNr)
	}
	if got := askReport(t, rp, dir, "report"); got != ptyWant {
		t.Fatalf("restored pty session reports %q, want %q", got, ptyWant)
	}
}

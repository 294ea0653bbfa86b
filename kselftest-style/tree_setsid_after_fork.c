// SPDX-License-Identifier: MIT
/*
 * tree_setsid_after_fork: children born before their parent's setsid stay
 * in the session the parent left. Child A forks B and D, then makes its
 * own session and forks C; D forks E, then makes its own session. B and E
 * are in this process's session and group, whose leader (the runner) is
 * not in the tree; C in A's session and group. After restart each must be
 * in its session and group, with its parent, and all exit in turn.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/wait.h>
#include "cr.h"

enum { B, C, D, E, N };

static int cmd[2];

/* wait reads the byte that lets the process go on. */
static void wait_go(void)
{
	char c;

	if (read(cmd[0], &c, 1) != 1)
		_exit(2);
}

/* reap waits for child pid, which must exit 0. */
static int reap(pid_t pid)
{
	int st;

	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %d", &ppid);
	fclose(f);
	return ppid;
}

static void child_a(int ack)
{
	pid_t ids[N];
	int dready[2];

	if (pipe(dready))
		_exit(1);
	ids[B] = fork();
	if (ids[B] == 0) {
		wait_go();
		_exit(0);
	}
	ids[D] = fork();
	if (ids[D] == 0) {
		pid_t e = fork();

		if (e == 0) {
			wait_go();
			_exit(0);
		}
		if (e < 0 || setsid() != getpid() || write(dready[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		wait_go();
		_exit(reap(e) ? 0 : 3);
	}
	if (ids[B] < 0 || ids[D] < 0 || read(dready[0], &ids[E], sizeof(ids[E])) != sizeof(ids[E]))
		_exit(1);
	if (setsid() != getpid())
		_exit(1);
	ids[C] = fork();
	if (ids[C] == 0) {
		wait_go();
		_exit(0);
	}
	if (ids[C] < 0 || write(ack, ids, sizeof(ids)) != sizeof(ids))
		_exit(1);
	wait_go();
	_exit(reap(ids[B]) && reap(ids[C]) && reap(ids[D]) ? 0 : 3);
}

int main(void)
{
	pid_t a, ids[N], sid, pgid;
	int ack[2], st;
	char go[N + 1] = "xxxxx";

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	if (pipe(cmd) || pipe(ack))
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	a = fork();
	if (a < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (a == 0)
		child_a(ack[1]);
	if (read(ack[0], ids, sizeof(ids)) != sizeof(ids))
		ksft_exit_fail_msg("setup: no pids from A");
	sid = getsid(0);
	pgid = getpgid(0);
	if (getsid(ids[B]) != sid || getsid(ids[E]) != sid || getsid(a) != a || getsid(ids[C]) != a ||
	    getsid(ids[D]) != ids[D] || getpgid(ids[B]) != pgid || getpgid(ids[E]) != pgid)
		ksft_exit_fail_msg("setup: sessions are not as planned");
	ksft_print_msg("setup ok: B %d and E %d in session %d, A %d (with C %d) and D %d in their own", ids[B], ids[E], sid, a,
		       ids[C], ids[D]);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(getsid(ids[B]) == sid && getsid(ids[E]) == sid, "B and E are in this session (%d, %d)", getsid(ids[B]),
			 getsid(ids[E]));
	ksft_test_result(getpgid(ids[B]) == pgid && getpgid(ids[E]) == pgid, "B and E are in this group (%d, %d)",
			 getpgid(ids[B]), getpgid(ids[E]));
	ksft_test_result(getsid(a) == a && getsid(ids[D]) == ids[D], "A and D lead their sessions (%d, %d)", getsid(a),
			 getsid(ids[D]));
	ksft_test_result(getsid(ids[C]) == a && getpgid(ids[C]) == a, "C is in A's session and group (%d, %d)",
			 getsid(ids[C]), getpgid(ids[C]));
	ksft_test_result(ppid_of(a) == getpid() && ppid_of(ids[B]) == a && ppid_of(ids[C]) == a && ppid_of(ids[D]) == a &&
				 ppid_of(ids[E]) == ids[D],
			 "every process has its parent");
	if (write(cmd[1], go, N + 1) != N + 1 || waitpid(a, &st, 0) != a)
		st = -1;
	ksft_test_result(WIFEXITED(st) && WEXITSTATUS(st) == 0, "all exit in turn (%#x)", st);
	ksft_test_result(waitpid(-1, &st, WNOHANG | __WALL) == -1 && errno == ECHILD, "no other child");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * tree_gone_leader: a process group whose leader has exited and been
 * reaped lives on in its members. Child L makes its own group, creates Z
 * and A as siblings (CLONE_PARENT: they are this process's children) and
 * exits; Z exits too and stays unreaped, A waits. After restart Z and A
 * must still be in group L, in this session, with no process L and no
 * other child left behind by the restart.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/wait.h>
#include "cr.h"

/* A child of this process, created by one of its children: no libc fork. */
static pid_t sibling(void)
{
	return syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
}

int main(void)
{
	int cmd[2], ack[2], st;
	pid_t l, z, a, ids[2];
	siginfo_t si;
	char c;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	if (pipe(cmd) || pipe(ack))
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	l = fork();
	if (l < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (l == 0) {
		if (setpgid(0, 0))
			_exit(1);
		ids[0] = sibling();
		if (ids[0] == 0)
			syscall(SYS_exit_group, 5); /* Z */
		ids[1] = sibling();
		if (ids[1] == 0) { /* A */
			if (syscall(SYS_read, cmd[0], &c, 1) != 1)
				syscall(SYS_exit_group, 2);
			syscall(SYS_exit_group, 0);
		}
		if (ids[0] < 0 || ids[1] < 0 || write(ack[1], ids, sizeof(ids)) != sizeof(ids))
			_exit(1);
		_exit(0);
	}
	if (waitpid(l, &st, 0) != l || st != 0)
		ksft_exit_fail_msg("setup: L exited with %#x", st);
	if (read(ack[0], ids, sizeof(ids)) != sizeof(ids))
		ksft_exit_fail_msg("setup: no pids from L");
	z = ids[0];
	a = ids[1];
	if (waitid(P_PID, z, &si, WEXITED | WNOWAIT))
		ksft_exit_fail_msg("setup: waitid Z: %s", strerror(errno));
	if (getpgid(z) != l || getpgid(a) != l || kill(l, 0) == 0)
		ksft_exit_fail_msg("setup: Z %d and A %d are not in group %d, or L lives", z, a, l);
	ksft_print_msg("setup ok: zombie %d and %d in group %d, whose leader is gone", z, a, l);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(getpgid(z) == l, "the zombie is in group %d (%d)", l, getpgid(z));
	ksft_test_result(getpgid(a) == l, "the live member is in group %d (%d)", l, getpgid(a));
	ksft_test_result(getsid(z) == getsid(0) && getsid(a) == getsid(0), "both are in this session");
	ksft_test_result(kill(l, 0) == -1 && errno == ESRCH, "no process %d", l);
	c = 'x';
	if (write(cmd[1], &c, 1) != 1 || waitpid(a, &st, 0) != a)
		st = -1;
	ksft_test_result(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the live member exits (%#x)", st);
	if (waitpid(z, &st, 0) != z)
		st = -1;
	ksft_test_result(WIFEXITED(st) && WEXITSTATUS(st) == 5, "the zombie is reaped with its status (%#x)", st);
	ksft_test_result(waitpid(-1, &st, WNOHANG | __WALL) == -1 && errno == ECHILD, "no other child");
	ksft_finished();
}

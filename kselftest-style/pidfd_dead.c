// SPDX-License-Identifier: MIT
/*
 * pidfd_dead: pidfds of processes that have exited and been reaped stay
 * pidfds of exited processes: two of one process share their inode, those
 * of two processes do not, signals fail with ESRCH, poll says it exited.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "cr.h"

static int child(void)
{
	pid_t pid = fork();

	if (pid < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static ino_t ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

int main(void)
{
	pid_t a, b;
	int a0, a1, b0;
	struct pollfd p;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	a = child();
	b = child();
	a0 = syscall(SYS_pidfd_open, a, 0);
	a1 = syscall(SYS_pidfd_open, a, 0);
	b0 = syscall(SYS_pidfd_open, b, 0);
	if (a0 < 0 || a1 < 0 || b0 < 0)
		ksft_exit_skip("pidfd_open: %s\n", strerror(errno));
	kill(a, SIGKILL);
	kill(b, SIGKILL);
	if (waitpid(a, NULL, 0) != a || waitpid(b, NULL, 0) != b)
		ksft_exit_fail_msg("setup: waitpid: %s", strerror(errno));
	if (ino(a0) != ino(a1) || ino(a0) == ino(b0))
		ksft_exit_skip("pidfds share no inode per process here (no pidfs)\n");
	ksft_print_msg("setup ok\n");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(ino(a0) && ino(a0) == ino(a1), "two pidfds of one dead process share their inode");
	ksft_test_result(ino(a0) != ino(b0), "pidfds of two dead processes do not");
	ksft_test_result(syscall(SYS_pidfd_send_signal, a0, 0, NULL, 0) < 0 && errno == ESRCH, "signalling it fails with ESRCH");
	p = (struct pollfd){ .fd = b0, .events = POLLIN };
	ksft_test_result(poll(&p, 1, 0) == 1 && p.revents & POLLIN, "poll says it exited");
	ksft_finished();
}

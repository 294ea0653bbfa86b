// SPDX-License-Identifier: MIT
/*
 * tree_session: a session leader with three children in two process
 * groups and a zombie. Child A leads its own group and writes a counter
 * into a pipe; child B joins A's group and checks every number arrives
 * once, in order; child C stays in the leader's group; Z has exited with
 * status 7 and K was killed by SIGKILL, neither reaped. After restart the
 * leader checks sessions, groups and parenthood, reaps Z and K with their
 * statuses, and collects A, B and C.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include "cr.h"

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static void writer(int wfd)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	uint32_t n = 0;

	while (!usr1) {
		if (write(wfd, &n, sizeof(n)) != sizeof(n))
			_exit(10);
		n++;
		nanosleep(&ts, NULL);
	}
	_exit(0);
}

static void reader(int rfd)
{
	uint32_t n, want = 0;
	ssize_t r;

	while ((r = read(rfd, &n, sizeof(n))) == sizeof(n)) {
		if (n != want) {
			/* lost or duplicated */
			ksft_print_msg("reader: got %u, want %u", n, want);
			_exit(20);
		}
		want++;
	}
	if (r == 0 && want > 0)
		_exit(0);
	ksft_print_msg("reader: read returned %zd (%s) after %u numbers", r, r < 0 ? strerror(errno) : "short", want);
	_exit(21);
}

static int status_of(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pid_t a, b, c, z, k, me;
	int p[2];

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	if (setsid() < 0)
		ksft_exit_fail_msg("setsid: %s", strerror(errno));
	me = getpid();
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(p))
		ksft_exit_fail_msg("pipe");
	z = fork();
	if (z == 0)
		_exit(7);
	k = fork();
	if (k == 0)
		for (;;)
			pause();
	kill(k, SIGKILL);
	a = fork();
	if (a == 0) {
		setpgid(0, 0);
		close(p[0]);
		writer(p[1]);
	}
	setpgid(a, a); /* either side may win the race */
	b = fork();
	if (b == 0) {
		setpgid(0, a);
		close(p[1]);
		reader(p[0]);
	}
	setpgid(b, a);
	close(p[0]);
	close(p[1]);
	c = fork();
	if (c == 0) {
		while (!usr1)
			pause();
		_exit(3);
	}
	/* Let the pipe flow and Z die before the checkpoint. */
	for (int i = 0; i < 200; i++) {
		char path[64], buf[256];
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/stat", z);
		fd = open(path, O_RDONLY);
		if (fd >= 0 && read(fd, buf, sizeof(buf)) > 0 && strstr(buf, ") Z ")) {
			close(fd);
			break;
		}
		if (fd >= 0)
			close(fd);
		usleep(5000);
	}
	usleep(100000);
	ksft_print_msg("setup ok: leader %d, A %d, B %d, C %d, zombie %d", me, a, b, c, z);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(getsid(a) == me && getsid(b) == me && getsid(c) == me && getsid(0) == me,
			 "all in the leader's session");
	ksft_test_result(getpgid(a) == a && getpgid(b) == a && getpgid(c) == me,
			 "groups: A leads its own with B in it; C in the leader's");
	ksft_test_result(status_of(z) == 7, "the zombie is reaped with status 7");
	ksft_test_result(status_of(k) == 128 + SIGKILL, "the killed zombie is reaped as killed by SIGKILL");
	usleep(200000); /* let the pipe flow after the restart */
	kill(a, SIGUSR1);
	ksft_test_result(status_of(a) == 0, "the writer stops cleanly");
	ksft_test_result(status_of(b) == 0, "the reader got every number once, in order");
	kill(c, SIGUSR1);
	ksft_test_result(status_of(c) == 3, "C is still our child");
	ksft_finished();
}

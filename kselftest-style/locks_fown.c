// SPDX-License-Identifier: MIT
/*
 * locks_fown: a flock, a POSIX record lock and an OFD lock held at
 * checkpoint time are held again after restart (a child forked after the
 * restart finds them taken), and a pipe with O_ASYNC, F_SETOWN and
 * F_SETSIG still raises the chosen signal in its owner when written to.
 */
#define _GNU_SOURCE
#include <sys/file.h>
#include <sys/wait.h>
#include "cr.h"

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static int open_file(const char *name)
{
	int fd = open(cr_path(name), O_RDWR | O_CREAT, 0600);

	if (fd < 0 || ftruncate(fd, 100))
		ksft_exit_fail_msg("%s: %s", name, strerror(errno));
	return fd;
}

/* In a child: 1 per lock found held by someone else. */
static int probe(pid_t parent)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int a = open(cr_path("a"), O_RDWR), b = open(cr_path("b"), O_RDWR), c = open(cr_path("c"), O_RDWR);
	int found = 0;

	if (flock(a, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK)
		found |= 1;
	if (!fcntl(b, F_GETLK, &fl) && fl.l_type == F_WRLCK && fl.l_pid == parent)
		found |= 2;
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(c, F_OFD_SETLK, &fl) && errno == EAGAIN)
		found |= 4;
	return found;
}

int main(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	struct flock ofd = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	struct sigaction sa = { .sa_handler = on_usr1 };
	int a, b, c, p[2], st, i;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	a = open_file("a");
	b = open_file("b");
	c = open_file("c");
	if (flock(a, LOCK_EX) || fcntl(b, F_SETLK, &fl) || fcntl(c, F_OFD_SETLK, &ofd))
		ksft_exit_fail_msg("locking: %s", strerror(errno));
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(p) || fcntl(p[0], F_SETOWN, getpid()) || fcntl(p[0], F_SETSIG, SIGUSR1) ||
	    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC | O_NONBLOCK))
		ksft_exit_fail_msg("fown: %s", strerror(errno));
	ksft_print_msg("setup ok: three locks, an async pipe");

	cr_ready();
	cr_wait_sigterm();

	child = fork();
	if (child == 0)
		_exit(probe(getppid()));
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st))
		ksft_exit_fail_msg("the probe died");
	ksft_test_result(WEXITSTATUS(st) & 1, "the flock is held");
	ksft_test_result(WEXITSTATUS(st) & 2, "the POSIX lock is held, by this pid");
	ksft_test_result(WEXITSTATUS(st) & 4, "the OFD lock is held");
	ksft_test_result(fcntl(p[0], F_GETOWN) == getpid() && fcntl(p[0], F_GETSIG) == SIGUSR1 && (fcntl(p[0], F_GETFL) & O_ASYNC),
			 "owner, signal and O_ASYNC kept");
	if (write(p[1], "x", 1) != 1)
		ksft_exit_fail_msg("write: %s", strerror(errno));
	for (i = 0; i < 100 && !got_usr1; i++)
		usleep(10000);
	ksft_test_result(got_usr1, "a write to the pipe raised SIGUSR1 in its owner");
	ksft_finished();
}

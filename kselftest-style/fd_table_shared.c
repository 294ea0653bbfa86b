// SPDX-License-Identifier: MIT
/*
 * fd_table_shared: processes that share one fd table without being
 * threads (clone with CLONE_FILES). S shares the root's table, and so does
 * G, S's child; P, S's other child, was cloned without CLONE_FILES and has
 * a copy of its own. After restart kcmp(KCMP_FILES) finds the same sharing,
 * and the table behaves as one: an fd the root opens is there for S and G
 * and not for P; one G closes is gone for the root while P keeps its copy.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "cr.h"

#ifndef KCMP_FILES
#define KCMP_FILES 2
#endif

#define FILE_FD 40   /* a file in the shared table, copied into P's */
#define CLOSED_FD 41 /* closed by G after restart */
#define NEW_FD 77    /* opened by the root after restart */
#define STACK (64 << 10)

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static int rep[2]; /* children report here, one byte each */

static void report(char c)
{
	if (write(rep[1], &c, 1) != 1)
		_exit(9);
}

static void wait_usr1(void)
{
	sigset_t m;

	sigprocmask(SIG_BLOCK, NULL, &m);
	sigdelset(&m, SIGUSR1);
	while (!usr1)
		sigsuspend(&m);
}

static int open_at(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static int status_of(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, __WALL) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static pid_t clone_fn(int (*fn)(void *), int flags)
{
	char *stack = malloc(STACK);

	if (!stack)
		return -1;
	return clone(fn, stack + STACK, flags | SIGCHLD, NULL);
}

/* G: shares the table; closes CLOSED_FD once it saw NEW_FD. */
static int g_main(void *arg)
{
	(void)arg;
	report('r');
	wait_usr1();
	if (!open_at(NEW_FD) || !open_at(FILE_FD))
		report('g');
	else
		report(close(CLOSED_FD) == 0 ? 'G' : 'c');
	return 0;
}

/* P: a copy of the table: sees neither the new fd nor G's close. */
static int p_main(void *arg)
{
	(void)arg;
	report('r');
	wait_usr1();
	report(!open_at(NEW_FD) && open_at(FILE_FD) && open_at(CLOSED_FD) ? 'P' : 'p');
	return 0;
}

static pid_t *kids; /* G and P, as S made them, in memory shared with the root */

/* S: shares the root's table, parent of G (sharing too) and P (not). */
static int s_main(void *arg)
{
	int g, p;

	(void)arg;
	kids[0] = clone_fn(g_main, CLONE_FILES);
	kids[1] = clone_fn(p_main, 0);
	if (kids[0] < 0 || kids[1] < 0)
		_exit(3);
	report('r');
	wait_usr1();
	report(open_at(NEW_FD) ? 'S' : 's');
	g = status_of(kids[0]);
	p = status_of(kids[1]);
	return g || p ? 4 : 0;
}

static int same_table(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0);
}

/* ask signals pid and reads the byte it reports. */
static char ask(pid_t pid)
{
	char c = '?';

	if (kill(pid, SIGUSR1) || read(rep[0], &c, 1) != 1)
		return '?';
	return c;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t set;
	pid_t s, self = getpid();
	char c, buf[8];
	int fd, i;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigaction(SIGUSR1, &sa, NULL) || sigprocmask(SIG_BLOCK, &set, NULL))
		ksft_exit_fail_msg("setup: signals: %s", strerror(errno));
	kids = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (kids == MAP_FAILED || pipe(rep))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	fd = open(cr_path("data"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "hello", 5) != 5 || dup2(fd, FILE_FD) != FILE_FD || dup2(fd, CLOSED_FD) != CLOSED_FD)
		ksft_exit_fail_msg("setup: data file: %s", strerror(errno));
	close(fd);
	s = clone_fn(s_main, CLONE_FILES);
	if (s < 0)
		ksft_exit_fail_msg("setup: clone: %s", strerror(errno));
	for (i = 0; i < 3; i++)
		if (read(rep[0], &c, 1) != 1 || c != 'r')
			ksft_exit_fail_msg("setup: a child did not start");
	if (same_table(self, s) || same_table(self, kids[0]) || !same_table(self, kids[1]))
		ksft_exit_fail_msg("setup: kcmp does not show the sharing made");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(same_table(self, s) == 0 && same_table(self, kids[0]) == 0,
			 "S and its child G share the root's fd table (kcmp)");
	ksft_test_result(same_table(self, kids[1]) > 0 && same_table(s, kids[1]) > 0, "P has an fd table of its own");
	ksft_test_result(pread(FILE_FD, buf, 5, 0) == 5 && !memcmp(buf, "hello", 5) && lseek(FILE_FD, 0, SEEK_CUR) == 5,
			 "the shared table's file: contents and offset");
	if (dup2(FILE_FD, NEW_FD) != NEW_FD)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	c = ask(s);
	ksft_test_result(c == 'S', "S sees the fd the root opened after restart (%c)", c);
	c = ask(kids[0]);
	ksft_test_result(c == 'G' && !open_at(CLOSED_FD), "G sees it too, and the fd G closed is gone for the root (%c)", c);
	c = ask(kids[1]);
	ksft_test_result(c == 'P', "P sees neither, and keeps its copy of the fd G closed (%c)", c);
	ksft_test_result(status_of(s) == 0, "S, G and P exit cleanly");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * seccomp_strict: seccomp strict mode (PR_SET_SECCOMP, SECCOMP_MODE_STRICT)
 * is per thread. A thread of this process and a child process enter it and
 * wait in read(2). After restart the thread must still be strict and the
 * main thread not; the thread must still read and write (allowed) and exit;
 * the child must be killed by SIGKILL at its first forbidden call.
 */
#define _GNU_SOURCE
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "cr.h"

static int to_thread[2], from_thread[2];
static volatile pid_t strict_tid;

/* Seccomp mode of /proc/self/task/TID/status, or of PID's status. */
static int seccomp_mode(const char *status)
{
	char line[256];
	int v = -1;
	FILE *f = fopen(status, "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp:", 8))
			v = atoi(line + 8);
	if (f)
		fclose(f);
	return v;
}

/* Only read, write and exit from here on: raw calls, nothing of libc's. */
static void *strict_thread(void *arg)
{
	char c;

	(void)arg;
	strict_tid = gettid();
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
		ksft_exit_fail_msg("setup: strict mode in a thread: %s", strerror(errno));
	c = 'r';
	syscall(SYS_write, from_thread[1], &c, 1);
	if (syscall(SYS_read, to_thread[0], &c, 1) != 1)
		c = '!';
	c = c == 'x' ? 'y' : '!';
	syscall(SYS_write, from_thread[1], &c, 1);
	syscall(SYS_exit, 0);
	return NULL;
}

int main(void)
{
	int to_child[2], from_child[2], status, mode;
	char c, path[64];
	pthread_t th;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	if (pipe(to_thread) || pipe(from_thread) || pipe(to_child) || pipe(from_child))
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (child == 0) {
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
			_exit(2);
		c = 'r';
		syscall(SYS_write, from_child[1], &c, 1);
		syscall(SYS_read, to_child[0], &c, 1);
		syscall(SYS_getppid); /* forbidden: SIGKILL */
		syscall(SYS_exit, 3);
	}
	if (read(from_child[0], &c, 1) != 1)
		ksft_exit_fail_msg("setup: the child did not enter strict mode");
	if (pthread_create(&th, NULL, strict_thread, NULL))
		ksft_exit_fail_msg("setup: pthread_create");
	if (read(from_thread[0], &c, 1) != 1)
		ksft_exit_fail_msg("setup: the thread did not enter strict mode");
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", strict_tid);
	if (seccomp_mode(path) != 1 || seccomp_mode("/proc/self/status") != 0)
		ksft_exit_fail_msg("setup: strict mode is not the thread's alone");
	ksft_print_msg("setup ok: thread %d and child %d in strict mode", strict_tid, child);

	cr_ready();
	cr_wait_sigterm();

	mode = seccomp_mode(path);
	ksft_test_result(mode == 1, "the thread is still in strict mode (%d)", mode);
	mode = seccomp_mode("/proc/self/status");
	ksft_test_result(mode == 0, "the main thread is not (%d)", mode);
	c = 'x';
	if (write(to_thread[1], &c, 1) != 1 || read(from_thread[0], &c, 1) != 1)
		c = '?';
	ksft_test_result(c == 'y', "the strict thread still reads and writes ('%c')", c);
	ksft_test_result(pthread_join(th, NULL) == 0, "the strict thread exits and is joined");
	snprintf(path, sizeof(path), "/proc/%d/status", child);
	mode = seccomp_mode(path);
	ksft_test_result(mode == 1, "the child is still in strict mode (%d)", mode);
	c = 'g';
	if (write(to_child[1], &c, 1) != 1 || waitpid(child, &status, 0) != child)
		status = -1;
	ksft_test_result(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			 "the child is killed at its first forbidden call (status %#x)", status);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * seccomp_threads: seccomp filters are per thread. T0 was created before
 * the main thread installed filter A (getppid: EPERM) and has none; T1,
 * created after, added filter B (getpgrp: EACCES) of its own; T2, created
 * after A, has A alone, shared with the main thread. After restart each
 * thread is under exactly its filters, and once T1 is gone the main
 * thread can install filter C (getsid: ESRCH) with SECCOMP_FILTER_FLAG_TSYNC:
 * the kernel allows it only if T2's A is the main thread's A, not a copy.
 */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <sys/prctl.h>
#include "cr.h"

static int install(int nr, int err, unsigned flags)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* refused says whether system call nr fails with err here. */
static int refused(long nr, int err)
{
	errno = 0;
	return syscall(nr, 0) == -1 && errno == err;
}

/* filters is this thread's Seccomp_filters count (-1: none shown). */
static int filters(void)
{
	char line[256];
	int v = -1;
	FILE *f = fopen("/proc/thread-self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp_filters:", 16))
			v = atoi(line + 16);
	if (f)
		fclose(f);
	return v;
}

/* What each thread sees: which of A, B, C refuse, and its filter count. */
struct view {
	int a, b, c, n;
};

static struct view look(void)
{
	return (struct view){ refused(SYS_getppid, EPERM), refused(SYS_getpgrp, EACCES), refused(SYS_getsid, ESRCH), filters() };
}

static int same(struct view v, int a, int b, int c, int n) { return v.a == a && v.b == b && v.c == c && v.n == n; }

struct worker {
	pthread_t th;
	int own_b;          /* installs B */
	sem_t go, done;     /* main posts go, the worker answers done */
	struct view before, after, synced;
	int setup_err;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->own_b && install(SYS_getpgrp, EACCES, 0))
		w->setup_err = errno;
	w->before = look();
	sem_post(&w->done);
	sem_wait(&w->go); /* after restart */
	w->after = look();
	sem_post(&w->done);
	if (w->own_b)
		return NULL; /* T1 leaves before the TSYNC */
	sem_wait(&w->go); /* after the TSYNC */
	w->synced = look();
	sem_post(&w->done);
	return NULL;
}

static void start(struct worker *w, int own_b)
{
	w->own_b = own_b;
	if (sem_init(&w->go, 0, 0) || sem_init(&w->done, 0, 0) || pthread_create(&w->th, NULL, worker_main, w))
		ksft_exit_fail_msg("setup: thread: %s", strerror(errno));
	sem_wait(&w->done);
	if (w->setup_err)
		ksft_exit_fail_msg("setup: installing B: %s", strerror(w->setup_err));
}

static void step(struct worker *w)
{
	sem_post(&w->go);
	sem_wait(&w->done);
}

int main(void)
{
	struct worker t[3];
	struct view m;
	long r;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	memset(t, 0, sizeof(t));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		ksft_exit_fail_msg("setup: no_new_privs: %s", strerror(errno));
	start(&t[0], 0);
	if (install(SYS_getppid, EPERM, 0))
		ksft_exit_fail_msg("setup: installing A: %s", strerror(errno));
	start(&t[2], 0); /* T2 before T1: it comes first in the thread list */
	start(&t[1], 1);
	if (!same(t[0].before, 0, 0, 0, 0) || !same(t[1].before, 1, 1, 0, 2) || !same(t[2].before, 1, 0, 0, 1) ||
	    !same(look(), 1, 0, 0, 1))
		ksft_exit_fail_msg("setup: the threads' filters are not as made");

	cr_ready();
	cr_wait_sigterm();

	for (int i = 0; i < 3; i++)
		step(&t[i]);
	m = look();
	ksft_test_result(same(m, 1, 0, 0, 1), "main thread: A alone (%d%d%d, %d filters)", m.a, m.b, m.c, m.n);
	ksft_test_result(same(t[0].after, 0, 0, 0, 0), "T0, made before A: no filter (%d%d%d, %d)", t[0].after.a, t[0].after.b,
			 t[0].after.c, t[0].after.n);
	ksft_test_result(same(t[1].after, 1, 1, 0, 2), "T1: A and its own B (%d%d%d, %d)", t[1].after.a, t[1].after.b, t[1].after.c,
			 t[1].after.n);
	ksft_test_result(same(t[2].after, 1, 0, 0, 1), "T2: A (%d%d%d, %d)", t[2].after.a, t[2].after.b, t[2].after.c, t[2].after.n);
	pthread_join(t[1].th, NULL);
	r = install(SYS_getsid, ESRCH, SECCOMP_FILTER_FLAG_TSYNC);
	ksft_test_result(r == 0, "TSYNC of C succeeds: T2 shares the main thread's A (%ld)", r);
	step(&t[0]);
	step(&t[2]);
	ksft_test_result(same(t[0].synced, 1, 0, 1, 2) && same(t[2].synced, 1, 0, 1, 2) && same(look(), 1, 0, 1, 2),
			 "after TSYNC every thread has A and C");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * worker_pool: a parent and three forked workers share a MAP_SHARED |
 * MAP_ANONYMOUS page (a counter each worker increments atomically, and a
 * page only one worker ever wrote) and a pipe on which the workers report.
 * After restart the memory must still be one object: increments by every
 * worker land in the same counter, a write by the parent is seen by all,
 * and the worker-only page kept its contents.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include "cr.h"

#define WORKERS 3

struct shared {
	long counter;
	long per_worker[WORKERS];
	volatile int stop;
	volatile long parent_value;
	long seen_parent_value[WORKERS];
};

int main(void)
{
	struct shared *sh;
	char *solo;
	pid_t pids[WORKERS];
	int p[2], i, ok = 1;
	long before, total = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	solo = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || solo == MAP_FAILED || pipe(p))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	for (i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(p[0]);
			if (i == 0) /* only worker 0 touches the second page */
				memset(solo + 4096, 'w', 4096);
			while (!sh->stop) {
				__atomic_fetch_add(&sh->counter, 1, __ATOMIC_SEQ_CST);
				sh->per_worker[i]++;
				usleep(500);
			}
			sh->seen_parent_value[i] = sh->parent_value;
			if (write(p[1], &i, sizeof(i)) != sizeof(i))
				_exit(1);
			_exit(0);
		}
	}
	close(p[1]);
	while (sh->counter < 300)
		usleep(1000);
	before = sh->counter;
	ksft_print_msg("setup ok: counter %ld", before);

	cr_ready();
	cr_wait_sigterm();

	usleep(100000); /* let the workers count after the restart */
	sh->parent_value = 4242;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	usleep(20000);
	sh->stop = 1;
	for (i = 0; i < WORKERS; i++) {
		int st, who;

		if (read(p[0], &who, sizeof(who)) != sizeof(who))
			ok = 0;
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			ok = 0;
	}
	for (i = 0; i < WORKERS; i++)
		total += sh->per_worker[i];
	ksft_test_result(ok, "every worker reported and exited cleanly");
	ksft_test_result(sh->counter > before, "the shared counter kept growing (%ld -> %ld)", before, sh->counter);
	ksft_test_result(total == sh->counter, "per-worker counts add up to the shared counter (%ld, %ld)", total, sh->counter);
	ksft_test_result(sh->seen_parent_value[0] == 4242 && sh->seen_parent_value[1] == 4242 && sh->seen_parent_value[2] == 4242,
			 "a write by the parent after restart is seen by every worker");
	ksft_test_result(solo[4096] == 'w' && solo[8191] == 'w', "a page only one worker wrote kept its contents");
	ksft_finished();
}

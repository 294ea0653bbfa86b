// SPDX-License-Identifier: MIT
/*
 * threads: eight threads increment their own counters and a mutex-protected
 * shared one while the process is checkpointed and restarted; a ninth is
 * blocked in pthread_cond_wait. After restart every thread must have kept
 * its tid, the shared counter must equal the sum of the others (no lost or
 * doubled increment), the waiter must wake when signalled, and every
 * thread must be joinable.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/syscall.h>
#include "cr.h"

#define WORKERS 8

static volatile long counters[WORKERS];
static pid_t tids_before[WORKERS + 1], tids_after[WORKERS + 1];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long shared;
static int wake_waiter;
static volatile int stop;

static void *worker(void *arg)
{
	long i = (long)arg;

	tids_before[i] = gettid();
	while (!stop) {
		pthread_mutex_lock(&mu);
		counters[i]++;
		shared++;
		pthread_mutex_unlock(&mu);
		if (counters[i] % 4096 == 0)
			usleep(1000);
	}
	tids_after[i] = gettid();
	return (void *)(i + 100);
}

static void *waiter(void *arg)
{
	(void)arg;
	tids_before[WORKERS] = gettid();
	pthread_mutex_lock(&mu);
	while (!wake_waiter)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	tids_after[WORKERS] = gettid();
	return (void *)42;
}

int main(void)
{
	pthread_t t[WORKERS], w;
	long sum = 0, i;
	int tids_kept = 1, joined = 1;
	void *ret;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	for (i = 0; i < WORKERS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)i))
			ksft_exit_fail_msg("pthread_create");
	if (pthread_create(&w, NULL, waiter, NULL))
		ksft_exit_fail_msg("pthread_create");
	for (i = 0; i < WORKERS; i++)
		while (counters[i] < 1000)
			usleep(1000);
	while (!tids_before[WORKERS])
		usleep(1000);
	ksft_print_msg("setup ok: %d threads running", WORKERS + 1);

	cr_ready();
	cr_wait_sigterm();

	pthread_mutex_lock(&mu);
	wake_waiter = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	stop = 1;
	for (i = 0; i < WORKERS; i++) {
		if (pthread_join(t[i], &ret) || ret != (void *)(i + 100))
			joined = 0;
		sum += counters[i];
	}
	if (pthread_join(w, &ret) || ret != (void *)42)
		joined = 0;
	for (i = 0; i <= WORKERS; i++)
		if (tids_before[i] != tids_after[i]) {
			ksft_print_msg("thread %ld: tid %d before, %d after", i, tids_before[i], tids_after[i]);
			tids_kept = 0;
		}
	ksft_test_result(joined, "every thread joined with its return value");
	ksft_test_result(sum == shared, "shared counter %ld equals the sum of per-thread counters %ld", shared, sum);
	ksft_test_result(tids_kept, "every thread kept its tid");
	ksft_test_result(sum > WORKERS * 1000, "the workers kept counting (%ld)", sum);
	ksft_finished();
}

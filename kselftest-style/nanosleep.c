// SPDX-License-Identifier: MIT
/*
 * nanosleep: checkpointed inside nanosleep(3 s). After restart the sleep
 * must complete normally (return 0, not -1/EINTR) and at least 3 s of
 * CLOCK_MONOTONIC must have passed since it started.
 */
#define _GNU_SOURCE
#include <time.h>

#include "cr.h"

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(void)
{
	struct timespec req = { .tv_sec = 3 }, rem = { 0, 0 }, t0;
	double slept;
	int r, err;

	cr_init();		/* SIGTERM blocked: it cannot interrupt the sleep */
	ksft_print_header();
	ksft_set_plan(2);
	if (clock_gettime(CLOCK_MONOTONIC, &t0))
		ksft_exit_fail_msg("setup: clock_gettime: %s", strerror(errno));

	cr_ready_in(SYS_clock_nanosleep);	/* glibc's nanosleep() uses it */
	r = nanosleep(&req, &rem);
	err = errno;
	slept = since(&t0);

	cr_wait_sigterm();
	if (r)
		ksft_print_msg("nanosleep: errno %d, remaining %ld.%09ld s", err,
			       (long)rem.tv_sec, rem.tv_nsec);
	ksft_test_result(r == 0, "nanosleep returned %d", r);
	ksft_test_result(slept >= 3.0, "%.3f s of CLOCK_MONOTONIC passed (>= 3)", slept);
	ksft_finished();
}

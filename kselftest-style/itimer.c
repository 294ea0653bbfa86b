// SPDX-License-Identifier: MIT
/*
 * itimer: an ITIMER_REAL with a 100 ms interval survives checkpoint/restart:
 * getitimer() reports the same interval and SIGALRM keeps arriving at about
 * that rate.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/time.h>
#include <time.h>

#include "cr.h"

#define INTERVAL_US	100000

static volatile sig_atomic_t alarms;

static void on_alrm(int sig)
{
	(void)sig;
	alarms++;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Wait (at most `limit` s) until `n` more SIGALRMs arrived; returns elapsed s. */
static double wait_alarms(int n, double limit)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };
	int target = alarms + n;
	double t0 = now();

	while (alarms < target && now() - t0 < limit)
		ppoll(NULL, 0, &tick, NULL);
	return now() - t0;
}

int main(void)
{
	struct itimerval it = { { 0, INTERVAL_US }, { 0, INTERVAL_US } }, before, after;
	struct sigaction sa;
	double took;
	int c0, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGALRM, &sa, NULL))
		ksft_exit_fail_msg("sigaction: %s", strerror(errno));
	if (setitimer(ITIMER_REAL, &it, NULL))
		ksft_exit_fail_msg("setitimer: %s", strerror(errno));
	wait_alarms(2, 2.0);
	if (alarms < 2)
		ksft_exit_fail_msg("setup: only %d SIGALRM in 2 s", alarms);
	if (getitimer(ITIMER_REAL, &before) || before.it_interval.tv_sec != 0 ||
	    before.it_interval.tv_usec != INTERVAL_US)
		ksft_exit_fail_msg("setup: getitimer interval %ld.%06ld", (long)before.it_interval.tv_sec,
				   (long)before.it_interval.tv_usec);

	cr_ready();
	cr_wait_sigterm();

	ok = !getitimer(ITIMER_REAL, &after);
	ksft_test_result(ok && after.it_interval.tv_sec == before.it_interval.tv_sec &&
			 after.it_interval.tv_usec == before.it_interval.tv_usec,
			 "interval %ld.%06ld == %ld.%06ld", (long)after.it_interval.tv_sec,
			 (long)after.it_interval.tv_usec, (long)before.it_interval.tv_sec,
			 (long)before.it_interval.tv_usec);
	ksft_test_result(ok && (after.it_value.tv_sec || after.it_value.tv_usec) &&
			 after.it_value.tv_sec == 0 && after.it_value.tv_usec <= INTERVAL_US,
			 "timer armed, next expiry in %ld.%06ld s", (long)after.it_value.tv_sec,
			 (long)after.it_value.tv_usec);
	c0 = alarms;
	took = wait_alarms(5, 3.0);
	ksft_test_result(alarms >= c0 + 5 && took >= 0.3 && took <= 1.5,
			 "SIGALRM keeps arriving: %d in %.3f s", alarms - c0, took);
	ksft_finished();
}

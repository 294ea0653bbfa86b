// SPDX-License-Identifier: MIT
/*
 * posix_timers: timer_create timers — a periodic one (20 ms, SIGUSR2,
 * counted) and a disarmed one — come back with their ids and settings, and
 * the periodic one keeps firing.
 */
#define _GNU_SOURCE
#include <time.h>
#include "cr.h"

static volatile sig_atomic_t ticks;

static void on_usr2(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	if (si->si_code == SI_TIMER)
		ticks++;
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2 };
	struct itimerspec its = { { 0, 20000000 }, { 0, 20000000 } }, p, i;
	struct timespec ts = { 0, 300000000 };
	timer_t periodic, idle;
	int before;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	sigaction(SIGUSR2, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &ev, &periodic) || timer_create(CLOCK_REALTIME, &ev, &idle) ||
	    timer_settime(periodic, 0, &its, NULL))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ksft_print_msg("setup ok: timers %ld and %ld", (long)(intptr_t)periodic, (long)(intptr_t)idle);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(timer_gettime(periodic, &p) == 0, "periodic timer found by its id");
	ksft_test_result(p.it_interval.tv_nsec == 20000000, "interval 20 ms (%ld ns)", p.it_interval.tv_nsec);
	ksft_test_result(timer_gettime(idle, &i) == 0 && !i.it_value.tv_sec && !i.it_value.tv_nsec, "idle timer found, still disarmed");
	before = ticks;
	while (nanosleep(&ts, &ts))
		;
	ksft_test_result(ticks - before >= 5, "it keeps firing: %d ticks in 300 ms", ticks - before);
	ksft_finished();
}

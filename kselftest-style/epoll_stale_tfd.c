// SPDX-License-Identifier: MIT
/*
 * epoll_stale_tfd: several files registered with one epoll instance under
 * the same fd number, each closed there afterwards (dup2 to that number,
 * EPOLL_CTL_ADD, next one): every watch comes back on its own file.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>

#include "cr.h"

#define N     4
#define TFD   90

int main(void)
{
	struct epoll_event ev;
	int p[N][2], ep, i, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(N);
	ep = epoll_create1(0);
	for (i = 0; i < N; i++) {
		if (pipe(p[i]) || dup2(p[i][0], TFD) != TFD)
			ksft_exit_fail_msg("pipe/dup2: %s", strerror(errno));
		ev.events = EPOLLIN;
		ev.data.u64 = 1000 + i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, TFD, &ev))
			ksft_exit_fail_msg("epoll_ctl: %s", strerror(errno));
	}
	close(TFD);

	cr_ready();
	cr_wait_sigterm();

	for (i = N - 1; i >= 0; i--) {
		char c;

		ok = write(p[i][1], "x", 1) == 1 && epoll_wait(ep, &ev, 1, 1000) == 1 && ev.data.u64 == (uint64_t)(1000 + i);
		ksft_test_result(ok, "pipe %d's watch: data %llu", i, (unsigned long long)ev.data.u64);
		if (read(p[i][0], &c, 1) != 1)
			ksft_exit_fail_msg("read: %s", strerror(errno));
	}
	ksft_finished();
}

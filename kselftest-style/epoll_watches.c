// SPDX-License-Identifier: MIT
/*
 * epoll_watches: an epoll instance with an edge-triggered watch, a
 * one-shot watch (already fired, so disarmed), a watch whose fd number was
 * closed while the file lives on through a dup, and an outer epoll
 * watching the inner one. After restart every watch behaves as before.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include "cr.h"

static int ready_data(int ep, uint64_t *data)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, 200);

	if (n == 1)
		*data = ev.data.u64;
	return n;
}

int main(void)
{
	struct epoll_event ev;
	int ep, outer, et, os, tmp, dup_fd;
	uint64_t v = 1, data = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	ep = epoll_create1(0);
	outer = epoll_create1(0);
	et = eventfd(0, EFD_NONBLOCK);
	os = eventfd(0, EFD_NONBLOCK);
	tmp = eventfd(0, EFD_NONBLOCK);
	if (ep < 0 || outer < 0 || et < 0 || os < 0 || tmp < 0)
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 101 };
	epoll_ctl(ep, EPOLL_CTL_ADD, et, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 202 };
	epoll_ctl(ep, EPOLL_CTL_ADD, os, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 303 };
	epoll_ctl(ep, EPOLL_CTL_ADD, tmp, &ev);
	dup_fd = dup(tmp);
	close(tmp); /* the watch lives on, its registered number gone */
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 404 };
	epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev);
	/* Fire the one-shot now: it is disarmed at the checkpoint. */
	if (write(os, &v, 8) != 8 || ready_data(ep, &data) != 1 || data != 202)
		ksft_exit_fail_msg("one-shot did not fire first");
	if (read(os, &v, 8) != 8)
		ksft_exit_fail_msg("read");
	ksft_print_msg("setup ok");

	cr_ready();
	cr_wait_sigterm();

	v = 1;
	write(et, &v, 8);
	ksft_test_result(ready_data(outer, &data) == 1 && data == 404, "the outer epoll sees the inner one ready");
	ksft_test_result(ready_data(ep, &data) == 1 && data == 101 && ready_data(ep, &data) == 0,
			 "the edge-triggered watch reports once per edge");
	read(et, &v, 8);
	v = 1;
	write(os, &v, 8);
	ksft_test_result(ready_data(ep, &data) == 0, "the fired one-shot watch stays disarmed");
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 202 };
	ksft_test_result(epoll_ctl(ep, EPOLL_CTL_MOD, os, &ev) == 0 && ready_data(ep, &data) == 1 && data == 202,
			 "re-armed with EPOLL_CTL_MOD, it fires");
	read(os, &v, 8);
	v = 1;
	write(dup_fd, &v, 8);
	ksft_test_result(ready_data(ep, &data) == 1 && data == 303, "the watch of a closed fd number follows its file through the dup");
	ksft_finished();
}

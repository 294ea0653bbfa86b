// SPDX-License-Identifier: MIT
/*
 * tcp_close: restarted with --tcp-close (tcp_close.restart-args), a
 * loopback connection of the tree, "hi" queued at its server end, comes
 * back closed at both ends: each reads the end of the stream, cannot
 * write (EPIPE) and polls POLLHUP; the listener, restored as it was,
 * accepts a new connection. Without checkpoint (run.sh --no-cr) the
 * connection is as it was.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include "cr.h"

static int state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -1;
	return ti.tcpi_state;
}

/* Whether fd is closed as --tcp-close leaves it. */
static int closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char b;

	return state(fd) == TCP_CLOSE && read(fd, &b, 1) == 0 && write(fd, "x", 1) < 0 && errno == EPIPE &&
	       poll(&pfd, 1, 0) == 1 && pfd.revents & POLLHUP;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l, c, s, again;
	char buf[3] = { 0 };

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	signal(SIGPIPE, SIG_IGN);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&sa, &len) || connect(c, (struct sockaddr *)&sa, sizeof(sa)))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || write(c, "hi", 2) != 2)
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ksft_print_msg("setup ok: connected, \"hi\" queued");

	cr_ready();
	cr_wait_sigterm();

	if (access(cr_path("img"), F_OK)) {
		ksft_test_result(state(c) == TCP_ESTABLISHED && state(s) == TCP_ESTABLISHED, "--no-cr: still established");
		ksft_test_result(read(s, buf, 2) == 2 && !strcmp(buf, "hi"), "--no-cr: \"hi\" read");
		ksft_test_result(write(s, "x", 1) == 1, "--no-cr: writes");
		ksft_finished();
	}
	ksft_test_result(closed(s), "the server end is closed: end of stream, EPIPE, POLLHUP (state %d)", state(s));
	ksft_test_result(closed(c), "the client end is closed: end of stream, EPIPE, POLLHUP (state %d)", state(c));
	again = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ksft_test_result(again >= 0 && !connect(again, (struct sockaddr *)&sa, sizeof(sa)) && accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0,
			 "the listener accepts a new connection");
	ksft_finished();
}

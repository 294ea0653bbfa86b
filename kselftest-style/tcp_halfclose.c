// SPDX-License-Identifier: MIT
/*
 * tcp_halfclose: a loopback TCP connection inside the tree, half closed at
 * checkpoint time. The child connected, sent "hello" and shut its side down
 * (FIN_WAIT2), then waits for the answer; the server accepted and read
 * nothing (CLOSE_WAIT, "hello" and the FIN queued). After restart the
 * server reads "hello", then the end of the stream, answers and closes;
 * the child must get the answer, then the end of the stream. The restored
 * server socket sends segments of loopback's size.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "cr.h"

static int state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -1;
	return ti.tcpi_state;
}

static int mss(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &v, &len))
		return -1;
	return v;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char buf[64];
	ssize_t n, got = 0;
	int l, c, status;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &len))
		ksft_exit_fail_msg("listen: %s", strerror(errno));
	child = fork();
	if (child == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) || write(s, "hello", 5) != 5 || shutdown(s, SHUT_WR))
			_exit(2);
		while ((n = read(s, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += n;
		buf[got] = 0;
		/* The answer, then the end of the stream. */
		_exit(n == 0 && !strcmp(buf, "bye") ? 0 : 1);
	}
	c = accept(l, NULL, NULL);
	if (c < 0)
		ksft_exit_fail_msg("accept: %s", strerror(errno));
	for (int i = 0; i < 200 && state(c) != TCP_CLOSE_WAIT; i++)
		usleep(5000);
	if (state(c) != TCP_CLOSE_WAIT)
		ksft_exit_fail_msg("setup: server socket in state %d, want CLOSE_WAIT", state(c));
	ksft_print_msg("setup ok: server side CLOSE_WAIT, client side half closed");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(state(c) == TCP_CLOSE_WAIT, "server socket still CLOSE_WAIT (state %d)", state(c));
	/* Loopback's MSS is 65483: not the 524 of a segment size never set. */
	ksft_test_result(mss(c) > 8192, "segments of loopback's size (TCP_MAXSEG %d)", mss(c));
	got = 0;
	while ((n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got < 0 ? 0 : got] = 0;
	ksft_test_result(n == 0 && !strcmp(buf, "hello"), "read \"hello\" then the end of the stream (\"%s\", last read %zd)", buf, n);
	ksft_test_result(write(c, "bye", 3) == 3 && close(c) == 0, "answered on the open half");
	if (waitpid(child, &status, 0) != child)
		ksft_exit_fail_msg("waitpid: %s", strerror(errno));
	ksft_test_result(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "the client got the answer, then the end of the stream (status %#x)", status);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * tcp_states: loopback TCP connections of the tree in states beyond
 * established, at checkpoint time:
 *  - closed by both sides (CLOSE), each with the other's last words unread;
 *  - reset by the peer (CLOSE), with "ping" unread;
 *  - connecting (SYN_SENT): its listener (backlog 0) has a connection
 *    waiting in its accept queue, so the SYN is dropped and retransmitted.
 * After restart the closed ones read their data then the end, and cannot
 * write; once the waiting connection is accepted, the connecting one gets
 * through and carries a byte each way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
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

static int wait_state(int fd, int want)
{
	for (int i = 0; i < 400 && state(fd) != want; i++)
		usleep(5000);
	return state(fd) == want;
}

static int client(struct sockaddr_in *sa, int nonblock)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (s < 0 || (connect(s, (struct sockaddr *)sa, sizeof(*sa)) && errno != EINPROGRESS))
		ksft_exit_fail_msg("connect: %s", strerror(errno));
	return s;
}

/* Reads until the end or an error; returns what was read, last the last result. */
static const char *drain(int fd, ssize_t *last, int *err)
{
	static char buf[64];
	ssize_t got = 0, n;

	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	*err = n < 0 ? errno : 0;
	*last = n;
	return buf;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger abort_now = { 1, 0 };
	socklen_t len = sizeof(sa);
	int l, c1, s1, c2, s2, waiting, connecting, s5, err;
	struct pollfd pfd;
	const char *got;
	ssize_t last;
	char b = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	signal(SIGPIPE, SIG_IGN);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 0) || getsockname(l, (struct sockaddr *)&sa, &len))
		ksft_exit_fail_msg("listen: %s", strerror(errno));

	/* Closed by both: each side wrote, then shut its side down. */
	c1 = client(&sa, 0);
	s1 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s1 < 0 || write(c1, "left", 4) != 4 || shutdown(c1, SHUT_WR) || write(s1, "over", 4) != 4 || shutdown(s1, SHUT_WR))
		ksft_exit_fail_msg("setup: closing: %s", strerror(errno));
	/* Reset: the client aborts, its "ping" not read. */
	c2 = client(&sa, 0);
	s2 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s2 < 0 || write(c2, "ping", 4) != 4 || setsockopt(c2, SOL_SOCKET, SO_LINGER, &abort_now, sizeof(abort_now)) || close(c2))
		ksft_exit_fail_msg("setup: reset: %s", strerror(errno));
	/* Connecting: the accept queue of backlog 0 holds one already. */
	waiting = client(&sa, 0);
	connecting = client(&sa, 1);
	if (!wait_state(c1, TCP_CLOSE) || !wait_state(s1, TCP_CLOSE) || !wait_state(s2, TCP_CLOSE) ||
	    !wait_state(waiting, TCP_ESTABLISHED) || !wait_state(connecting, TCP_SYN_SENT))
		ksft_exit_fail_msg("setup: states %d %d %d %d %d, want CLOSE CLOSE CLOSE ESTABLISHED SYN_SENT",
				   state(c1), state(s1), state(s2), state(waiting), state(connecting));
	ksft_print_msg("setup ok: two closed, one reset, one connecting");

	cr_ready();
	cr_wait_sigterm();

	got = drain(c1, &last, &err);
	ksft_test_result(state(c1) == TCP_CLOSE && last == 0 && !strcmp(got, "over"),
			 "closed client reads \"over\", then the end (\"%s\", %zd, state %d)", got, last, state(c1));
	got = drain(s1, &last, &err);
	ksft_test_result(state(s1) == TCP_CLOSE && last == 0 && !strcmp(got, "left"),
			 "closed server reads \"left\", then the end (\"%s\", %zd, state %d)", got, last, state(s1));
	ksft_test_result(write(c1, "x", 1) < 0 && errno == EPIPE && write(s1, "x", 1) < 0 && errno == EPIPE,
			 "neither closed end writes (EPIPE)");
	got = drain(s2, &last, &err);
	ksft_test_result(state(s2) == TCP_CLOSE && !strcmp(got, "ping") && (last == 0 || err == ECONNRESET) && write(s2, "x", 1) < 0,
			 "reset end reads \"ping\", then the end, and cannot write (\"%s\", %zd)", got, last);

	/* Room in the accept queue: the connecting one's SYN gets through. */
	ksft_test_result(accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0 && state(connecting) == TCP_SYN_SENT,
			 "the waiting connection is accepted, the other still connecting (state %d)", state(connecting));
	pfd = (struct pollfd){ .fd = connecting, .events = POLLOUT };
	err = poll(&pfd, 1, 30000);
	ksft_test_result(err == 1 && state(connecting) == TCP_ESTABLISHED,
			 "the connecting one gets established (poll %d, state %d)", err, state(connecting));
	fcntl(connecting, F_SETFL, 0);
	s5 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ksft_test_result(s5 >= 0 && write(connecting, "a", 1) == 1 && read(s5, &b, 1) == 1 && b == 'a' &&
			 write(s5, "b", 1) == 1 && read(connecting, &b, 1) == 1 && b == 'b',
			 "it carries a byte each way");
	ksft_finished();
}

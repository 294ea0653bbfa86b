// SPDX-License-Identifier: MIT
/*
 * unix_shutdown: unix sockets shut down and sockets whose peer is gone. A
 * stream pair with one end shut down for reading; a datagram pair with
 * one end shut down for writing after queueing a message; a stream and a
 * seqpacket socket each with bytes queued by a peer that was closed since;
 * and several datagrams queued on a pair, read back with their boundaries.
 * After restart every queued byte is read, the end of the stream follows,
 * and the shut-down directions still refuse writes.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/socket.h>
#include "cr.h"

static int pair(int type, int sv[2])
{
	if (socketpair(AF_UNIX, type, 0, sv))
		ksft_exit_fail_msg("setup: socketpair: %s", strerror(errno));
	return 0;
}

static int expect(int fd, const char *want)
{
	char buf[64] = { 0 };
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n)) {
		ksft_print_msg("fd %d: got %zd bytes \"%.*s\", want \"%s\"", fd, n, n > 0 ? (int)n : 0, buf, want);
		return 0;
	}
	return 1;
}

static int eof(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

int main(void)
{
	int su[2], dw[2], sgone[2], qgone[2], dq[2];

	cr_init();
	signal(SIGPIPE, SIG_IGN);
	ksft_print_header();
	ksft_set_plan(6);

	pair(SOCK_STREAM, su);
	if (shutdown(su[0], SHUT_RD))
		ksft_exit_fail_msg("setup: shutdown: %s", strerror(errno));
	pair(SOCK_DGRAM, dw);
	if (write(dw[0], "before", 6) != 6 || shutdown(dw[0], SHUT_WR))
		ksft_exit_fail_msg("setup: dgram: %s", strerror(errno));
	pair(SOCK_STREAM, sgone);
	if (write(sgone[1], "left", 4) != 4 || write(sgone[1], "over", 4) != 4 || close(sgone[1]))
		ksft_exit_fail_msg("setup: stream: %s", strerror(errno));
	pair(SOCK_SEQPACKET, qgone);
	if (write(qgone[1], "one", 3) != 3 || write(qgone[1], "two", 3) != 3 || close(qgone[1]))
		ksft_exit_fail_msg("setup: seqpacket: %s", strerror(errno));
	pair(SOCK_DGRAM, dq);
	if (write(dq[1], "a", 1) != 1 || write(dq[1], "bc", 2) != 2 || write(dq[1], "def", 3) != 3)
		ksft_exit_fail_msg("setup: dgram queue: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(write(su[1], "x", 1) == -1 && errno == EPIPE && write(su[0], "y", 1) == 1 && expect(su[1], "y"),
			 "stream end shut down for reading: its peer cannot write to it, it can write");
	ksft_test_result(expect(dw[1], "before") && write(dw[0], "z", 1) == -1 && errno == EPIPE,
			 "dgram end shut down for writing after queueing: the message arrives, no more can be sent");
	ksft_test_result(expect(sgone[0], "leftover") && eof(sgone[0]),
			 "stream whose peer is gone: queued bytes, then the end of the stream");
	ksft_test_result(expect(qgone[0], "one") && expect(qgone[0], "two") && eof(qgone[0]),
			 "seqpacket whose peer is gone: queued messages, then the end");
	ksft_test_result(write(sgone[0], "w", 1) == -1 && errno == EPIPE, "stream whose peer is gone cannot be written");
	ksft_test_result(expect(dq[0], "a") && expect(dq[0], "bc") && expect(dq[0], "def"),
			 "dgram messages read back with their boundaries");
	ksft_finished();
}

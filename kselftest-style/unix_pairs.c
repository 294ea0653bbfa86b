// SPDX-License-Identifier: MIT
/*
 * unix_pairs: stream, datagram and seqpacket socketpairs with data queued
 * in both directions at checkpoint time, and a stream pair shared with a
 * forked child, and a stream pair whose end raised its send buffer
 * (SO_SNDBUFFORCE) to queue 2 MiB, ten times a new pair's. After restart
 * every queued byte is read back in order, message boundaries kept, and
 * parent and child still talk over theirs.
 */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include "cr.h"

static int pairs[3][2];
static const int types[3] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
static const char *names[3] = { "stream", "dgram", "seqpacket" };

static int expect(int fd, const char *want, int nonblock)
{
	char buf[64] = { 0 };
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, nonblock ? MSG_DONTWAIT : 0);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n)) {
		ksft_print_msg("got %zd bytes %.*s, want %s", n, n > 0 ? (int)n : 0, buf, want);
		return 0;
	}
	return 1;
}

int main(void)
{
	int child_pair[2], big[2], i, ok, size = 4 << 20;
	static char blob[2 << 20], back[2 << 20];
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	for (i = 0; i < 3; i++)
		if (socketpair(AF_UNIX, types[i], 0, pairs[i]))
			ksft_exit_fail_msg("socketpair %s: %s", names[i], strerror(errno));
	for (i = 0; i < 3; i++) {
		/* Two messages each way: boundaries must survive for dgram/seqpacket. */
		if (send(pairs[i][0], "ab", 2, 0) != 2 || send(pairs[i][0], "cde", 3, 0) != 3 ||
		    send(pairs[i][1], "xyz", 3, 0) != 3 || send(pairs[i][1], "w", 1, 0) != 1)
			ksft_exit_fail_msg("send %s: %s", names[i], strerror(errno));
	}
	for (i = 0; i < (int)sizeof(blob); i++)
		blob[i] = i * 7 + i / 251;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, big) || setsockopt(big[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) ||
	    fcntl(big[0], F_SETFL, O_NONBLOCK) || write(big[0], blob, sizeof(blob)) != sizeof(blob))
		ksft_exit_fail_msg("setup: 2 MiB queued: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, child_pair))
		ksft_exit_fail_msg("socketpair: %s", strerror(errno));
	child = fork();
	if (child == 0) {
		char buf[16], out[32];

		close(child_pair[0]);
		/* Echo, with a prefix, whatever comes, until EOF. */
		for (;;) {
			ssize_t n = read(child_pair[1], buf, sizeof(buf));

			if (n <= 0)
				_exit(n == 0 ? 0 : 1);
			memcpy(out, "echo:", 5);
			memcpy(out + 5, buf, n);
			if (write(child_pair[1], out, n + 5) != n + 5)
				_exit(2);
		}
	}
	close(child_pair[1]);
	if (write(child_pair[0], "one", 3) != 3 || !expect(child_pair[0], "echo:one", 0))
		ksft_exit_fail_msg("the child does not echo");
	/* Left queued for the child to read after the restart. */
	if (write(child_pair[0], "two", 3) != 3)
		ksft_exit_fail_msg("write to the child");
	ksft_print_msg("setup ok: 3 pairs with queued data, child %d", child);

	cr_ready();
	cr_wait_sigterm();

	ok = expect(pairs[0][1], "abcde", 1) && expect(pairs[0][0], "xyzw", 1);
	ksft_test_result(ok, "stream pair: both directions read back");
	for (i = 1; i < 3; i++) {
		ok = expect(pairs[i][1], "ab", 1) && expect(pairs[i][1], "cde", 1) &&
		     expect(pairs[i][0], "xyz", 1) && expect(pairs[i][0], "w", 1);
		ksft_test_result(ok, "%s pair: every message, boundaries kept", names[i]);
	}
	{
		int st;

		ok = expect(child_pair[0], "echo:two", 0);
		close(child_pair[0]);
		ok = ok && waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	ksft_test_result(ok, "the child read what was queued for it, answered, and exited on EOF");
	{
		size_t got = 0;
		ssize_t n;

		while (got < sizeof(back) && (n = recv(big[1], back + got, sizeof(back) - got, MSG_DONTWAIT)) > 0)
			got += n;
		ksft_test_result(got == sizeof(back) && !memcmp(blob, back, sizeof(back)),
				 "stream pair with 2 MiB queued: every byte read back (%zu)", got);
	}
	ksft_finished();
}

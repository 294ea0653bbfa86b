// SPDX-License-Identifier: MIT
/*
 * tcp_acceptq: at checkpoint time a connection waits in the server's
 * accept queue: the child connected and sent "ping" while the server naps
 * between non-blocking accepts (300 ms). A connection cannot be put back in
 * an accept queue, so the checkpoint lets the server run until it has
 * accepted it. After restart the server reads "ping" on the accepted
 * connection and answers "pong"; the child must get it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "cr.h"

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timespec nap = { 0, 300000000 };
	socklen_t len = sizeof(sa);
	struct tcp_info ti;
	char buf[8] = { 0 };
	int l, c = -1, status;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&sa, &len))
		ksft_exit_fail_msg("listen: %s", strerror(errno));
	child = fork();
	if (child == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		char r[8] = { 0 };

		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) || write(s, "ping", 4) != 4)
			_exit(2);
		_exit(read(s, r, 4) == 4 && !strcmp(r, "pong") ? 0 : 1);
	}
	/* Ready once the connection waits in the accept queue. */
	for (int i = 0; i < 200; i++) {
		len = sizeof(ti);
		if (!getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &len) && ti.tcpi_unacked > 0)
			break;
		usleep(5000);
	}
	if (ti.tcpi_unacked == 0)
		ksft_exit_fail_msg("setup: nothing in the accept queue");
	ksft_print_msg("setup ok: %u connection(s) waiting", ti.tcpi_unacked);
	cr_ready_in(SYS_clock_nanosleep);
	do
		nanosleep(&nap, NULL);
	while ((c = accept4(l, NULL, NULL, 0)) < 0);
	cr_wait_sigterm();

	ksft_test_result(c >= 0, "the connection was accepted");
	ksft_test_result(read(c, buf, 4) == 4 && !strcmp(buf, "ping"), "read what the client sent before the checkpoint (\"%s\")", buf);
	if (write(c, "pong", 4) != 4 || waitpid(child, &status, 0) != child)
		ksft_exit_fail_msg("answering: %s", strerror(errno));
	ksft_test_result(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the client got the answer (status %#x)", status);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * tcp_reuseport: two loopback listeners share a port with SO_REUSEPORT;
 * the first turns the option off once the second is bound. After restart
 * both listen on that port again, with SO_REUSEPORT off and on as before,
 * and every connection to the port is accepted by one of them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "cr.h"

static int listener(struct sockaddr_in *sa)
{
	int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	socklen_t len = sizeof(*sa);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)sa, sizeof(*sa)) || listen(l, 16) || getsockname(l, (struct sockaddr *)sa, &len))
		ksft_exit_fail_msg("setup: listener: %s", strerror(errno));
	return l;
}

static int getint(int s, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(s, SOL_SOCKET, opt, &v, &len);
	return v;
}

static int port_of(int s)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	return getsockname(s, (struct sockaddr *)&sa, &len) ? -1 : ntohs(sa.sin_port);
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int l1, l2, zero = 0, port, accepted = 0, c[8];

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	l1 = listener(&sa);
	l2 = listener(&sa);
	port = ntohs(sa.sin_port);
	if (setsockopt(l1, SOL_SOCKET, SO_REUSEPORT, &zero, sizeof(zero)))
		ksft_exit_fail_msg("setup: SO_REUSEPORT=0: %s", strerror(errno));
	ksft_print_msg("setup ok: two listeners on port %d", port);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(port_of(l1) == port && port_of(l2) == port, "both listen on port %d", port);
	ksft_test_result(getint(l1, SO_REUSEPORT) == 0 && getint(l2, SO_REUSEPORT) == 1, "SO_REUSEPORT off on the first, on on the second");
	for (int i = 0; i < 8; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (c[i] < 0 || connect(c[i], (struct sockaddr *)&sa, sizeof(sa)))
			ksft_exit_fail_msg("connect: %s", strerror(errno));
	}
	for (int tries = 0; tries < 100 && accepted < 8; tries++) {
		while (accept(l1, NULL, NULL) >= 0 || accept(l2, NULL, NULL) >= 0)
			accepted++;
		usleep(10000);
	}
	ksft_test_result(accepted == 8, "every connection to the port is accepted (%d of 8)", accepted);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * unix_listen_udp: a unix socket listening on a path, one on an abstract
 * name, and two UDP sockets (one bound, one connected to it). After restart
 * a connect to each listener is accepted, and a datagram sent on the
 * connected UDP socket arrives on the bound one, at the same port. A third
 * UDP socket, connected too, is shut down for writing: it still refuses to
 * send (EPIPE). A unix stream socket bound to an abstract name that ends in
 * a NUL byte, not listening yet, listens after restart and a connect to
 * that exact name (NUL included) is accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>
#include <signal.h>
#include "cr.h"

static socklen_t unix_addr(struct sockaddr_un *sa, const char *name, int abstract)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (abstract) {
		strncpy(sa->sun_path + 1, name, sizeof(sa->sun_path) - 2);
		return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
	}
	strncpy(sa->sun_path, name, sizeof(sa->sun_path) - 1);
	return sizeof(*sa);
}

static int listener(const char *name, int abstract)
{
	struct sockaddr_un sa;
	socklen_t len = unix_addr(&sa, name, abstract);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&sa, len) || listen(s, 8))
		ksft_exit_fail_msg("unix listener %s: %s", name, strerror(errno));
	return s;
}

static int connect_accept(int l, const char *name, int abstract)
{
	struct sockaddr_un sa;
	socklen_t len = unix_addr(&sa, name, abstract);
	int c = socket(AF_UNIX, SOCK_STREAM, 0), a;
	char b = 0;

	if (c < 0 || connect(c, (struct sockaddr *)&sa, len))
		return 0;
	a = accept(l, NULL, NULL);
	if (a < 0 || write(c, "k", 1) != 1 || read(a, &b, 1) != 1)
		return 0;
	close(a);
	close(c);
	return b == 'k';
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
	char path[4096], abstract[64], buf[16] = { 0 };
	struct linger lg = { .l_onoff = 1, .l_linger = 7 }, lg2;
	socklen_t lglen = sizeof(lg2);
	struct sockaddr_un du;
	socklen_t dulen;
	int lp, la, ub, uc, us, port, dgram, dclient, nb, nc;
	struct sockaddr_un nul = { .sun_family = AF_UNIX };
	socklen_t nullen;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);
	snprintf(path, sizeof(path), "%s", cr_path("srv.sock"));
	snprintf(abstract, sizeof(abstract), "crsub-test-%d", getpid());
	lp = listener(path, 0);
	la = listener(abstract, 1);
	ub = socket(AF_INET, SOCK_DGRAM, 0);
	uc = socket(AF_INET, SOCK_DGRAM, 0);
	if (ub < 0 || uc < 0 || bind(ub, (struct sockaddr *)&sa, sizeof(sa)))
		ksft_exit_fail_msg("udp: %s", strerror(errno));
	port = port_of(ub);
	sa.sin_port = htons(port);
	if (connect(uc, (struct sockaddr *)&sa, sizeof(sa)) || send(uc, "a", 1, 0) != 1 || recv(ub, buf, sizeof(buf), 0) != 1)
		ksft_exit_fail_msg("udp round trip: %s", strerror(errno));
	us = socket(AF_INET, SOCK_DGRAM, 0);
	if (us < 0 || connect(us, (struct sockaddr *)&sa, sizeof(sa)) || shutdown(us, SHUT_WR))
		ksft_exit_fail_msg("udp shutdown: %s", strerror(errno));
	snprintf(nul.sun_path + 1, sizeof(nul.sun_path) - 2, "crsub-nul-%d", getpid());
	nullen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(nul.sun_path + 1) + 1; /* the NUL after it too */
	nb = socket(AF_UNIX, SOCK_STREAM, 0);
	if (nb < 0 || bind(nb, (struct sockaddr *)&nul, nullen))
		ksft_exit_fail_msg("bind to a name ending in NUL: %s", strerror(errno));
	if (!connect_accept(lp, path, 0) || !connect_accept(la, abstract, 1))
		ksft_exit_fail_msg("unix listeners do not accept");
	/* A bound, unconnected unix datagram socket, and SO_LINGER set. */
	dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
	dulen = unix_addr(&du, cr_path("dgram.sock"), 0);
	if (dgram < 0 || bind(dgram, (struct sockaddr *)&du, dulen) || setsockopt(ub, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
		ksft_exit_fail_msg("unix dgram / linger: %s", strerror(errno));
	ksft_print_msg("setup ok: udp port %d", port);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(connect_accept(lp, path, 0), "the unix listener at its path accepts");
	ksft_test_result(connect_accept(la, abstract, 1), "the abstract unix listener accepts");
	ksft_test_result(port_of(ub) == port, "the bound UDP socket kept port %d (%d)", port, port_of(ub));
	memset(buf, 0, sizeof(buf));
	ksft_test_result(send(uc, "hello", 5, 0) == 5 && recv(ub, buf, sizeof(buf), MSG_DONTWAIT) == 5 && !strcmp(buf, "hello"),
			 "a datagram on the connected socket arrives on the bound one");
	dclient = socket(AF_UNIX, SOCK_DGRAM, 0);
	memset(buf, 0, sizeof(buf));
	ksft_test_result(sendto(dclient, "dg", 2, 0, (struct sockaddr *)&du, dulen) == 2 && recv(dgram, buf, sizeof(buf), MSG_DONTWAIT) == 2,
			 "the bound unix datagram socket receives at its path");
	ksft_test_result(!getsockopt(ub, SOL_SOCKET, SO_LINGER, &lg2, &lglen) && lg2.l_onoff && lg2.l_linger == 7, "SO_LINGER kept");
	signal(SIGPIPE, SIG_IGN);
	ksft_test_result(send(us, "x", 1, MSG_DONTWAIT) < 0 && errno == EPIPE, "the UDP socket shut down for writing refuses to send");
	nc = socket(AF_UNIX, SOCK_STREAM, 0);
	ksft_test_result(!listen(nb, 1) && !connect(nc, (struct sockaddr *)&nul, nullen) && accept(nb, NULL, NULL) >= 0,
			 "the socket bound to an abstract name ending in NUL listens under that exact name");
	ksft_finished();
}

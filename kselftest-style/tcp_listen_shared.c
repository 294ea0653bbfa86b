// SPDX-License-Identifier: MIT
/*
 * tcp_listen_shared: two loopback listeners and connections accepted from
 * them, which share their ports, inside one process; the accepted ends
 * have lower fd numbers than their listeners, so a restart rebuilds them
 * first. One listener has SO_REUSEADDR, the other not. After restart both
 * listeners accept a new connection on their port, the old connections
 * still carry data both ways, and SO_REUSEADDR is as it was on every
 * socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "cr.h"

struct pair {
	int listener, server, client, reuse;
	struct sockaddr_in sa;
};

static int reuseaddr(int s)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &len) ? -1 : v;
}

/* setup makes a listener (at fd lfd) and one accepted connection. */
static void setup(struct pair *p, int reuse, int lfd)
{
	socklen_t len = sizeof(p->sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	p->reuse = reuse;
	p->sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) ||
	    bind(l, (struct sockaddr *)&p->sa, sizeof(p->sa)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&p->sa, &len) || dup2(l, lfd) != lfd || close(l))
		ksft_exit_fail_msg("setup: listener: %s", strerror(errno));
	p->listener = lfd;
	p->client = socket(AF_INET, SOCK_STREAM, 0);
	if (p->client < 0 || connect(p->client, (struct sockaddr *)&p->sa, sizeof(p->sa)))
		ksft_exit_fail_msg("setup: connect: %s", strerror(errno));
	p->server = accept(p->listener, NULL, NULL);
	if (p->server < 0 || p->server > lfd)
		ksft_exit_fail_msg("setup: accept: %s (fd %d)", strerror(errno), p->server);
}

static int talk(int a, int b)
{
	char buf[4] = { 0 };

	return write(a, "ping", 4) == 4 && read(b, buf, 4) == 4 && !memcmp(buf, "ping", 4) &&
	       write(b, "pong", 4) == 4 && read(a, buf, 4) == 4 && !memcmp(buf, "pong", 4);
}

static int accepts(struct pair *p)
{
	int c = socket(AF_INET, SOCK_STREAM, 0), a = -1, ok;

	if (c >= 0 && !connect(c, (struct sockaddr *)&p->sa, sizeof(p->sa)))
		a = accept(p->listener, NULL, NULL);
	ok = a >= 0 && talk(c, a);
	close(a);
	close(c);
	return ok;
}

int main(void)
{
	struct pair p[2];

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	setup(&p[0], 1, 40);
	setup(&p[1], 0, 41);
	if (!talk(p[0].client, p[0].server) || !talk(p[1].client, p[1].server))
		ksft_exit_fail_msg("setup: no data through the connections");

	cr_ready();
	cr_wait_sigterm();

	for (int i = 0; i < 2; i++) {
		const char *what = p[i].reuse ? "with SO_REUSEADDR" : "without SO_REUSEADDR";

		ksft_test_result(accepts(&p[i]), "listener %s accepts on its port", what);
		ksft_test_result(talk(p[i].client, p[i].server), "connection accepted from the listener %s carries data",
				 what);
		ksft_test_result(reuseaddr(p[i].listener) == p[i].reuse && reuseaddr(p[i].server) == p[i].reuse,
				 "SO_REUSEADDR %d on the listener and its accepted end (%d, %d)", p[i].reuse,
				 reuseaddr(p[i].listener), reuseaddr(p[i].server));
	}
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * accept_inflight: connections wait in accept queues at checkpoint time,
 * their clients held by the process: a unix stream listener bound to a path
 * (mode 0640) with two, a unix seqpacket listener on an abstract name with
 * one, and a loopback TCP listener with one. None has sent anything yet.
 * After restart each listener accepts as many connections as waited, and
 * data goes both ways between each client and its accepted end; the socket
 * file keeps its mode, and the accept queues are empty after.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "cr.h"

static int exchange(int a, int b, int type)
{
	char buf[16] = { 0 };

	if (send(a, "ping", 4, 0) != 4 || recv(b, buf, sizeof(buf), 0) != 4 || memcmp(buf, "ping", 4))
		return 0;
	if (send(b, "pong", 4, 0) != 4 || recv(a, buf, sizeof(buf), 0) != 4 || memcmp(buf, "pong", 4))
		return 0;
	(void)type;
	return 1;
}

static int unix_listener(int type, struct sockaddr_un *sa, socklen_t len)
{
	int l = socket(AF_UNIX, type, 0);

	if (l < 0 || bind(l, (struct sockaddr *)sa, len) || listen(l, 8))
		ksft_exit_fail_msg("setup: unix listener: %s", strerror(errno));
	return l;
}

static int unix_client(int type, struct sockaddr_un *sa, socklen_t len)
{
	int c = socket(AF_UNIX, type, 0);

	if (c < 0 || connect(c, (struct sockaddr *)sa, len))
		ksft_exit_fail_msg("setup: unix connect: %s", strerror(errno));
	return c;
}

static int none_waiting(int l)
{
	int fl = fcntl(l, F_GETFL);
	int r;

	fcntl(l, F_SETFL, fl | O_NONBLOCK);
	r = accept(l, NULL, NULL);
	fcntl(l, F_SETFL, fl);
	return r < 0 && errno == EAGAIN;
}

int main(void)
{
	struct sockaddr_un path = { .sun_family = AF_UNIX }, abs = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(in), abslen;
	int ls, lq, lt, cs[2], cq, ct, a, ok;
	struct stat st;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	snprintf(path.sun_path, sizeof(path.sun_path), "%s/listen.sock", getenv("CR_DIR") ? getenv("CR_DIR") : ".");
	unlink(path.sun_path);
	ls = unix_listener(SOCK_STREAM, &path, sizeof(path));
	if (chmod(path.sun_path, 0640))
		ksft_exit_fail_msg("setup: chmod: %s", strerror(errno));
	cs[0] = unix_client(SOCK_STREAM, &path, sizeof(path));
	cs[1] = unix_client(SOCK_STREAM, &path, sizeof(path));

	snprintf(abs.sun_path + 1, sizeof(abs.sun_path) - 1, "crsub-inflight-%d", getpid());
	abslen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs.sun_path + 1);
	lq = unix_listener(SOCK_SEQPACKET, &abs, abslen);
	cq = unix_client(SOCK_SEQPACKET, &abs, abslen);

	lt = socket(AF_INET, SOCK_STREAM, 0);
	if (lt < 0 || bind(lt, (struct sockaddr *)&in, sizeof(in)) || listen(lt, 4) ||
	    getsockname(lt, (struct sockaddr *)&in, &len))
		ksft_exit_fail_msg("setup: tcp listener: %s", strerror(errno));
	ct = socket(AF_INET, SOCK_STREAM, 0);
	if (ct < 0 || connect(ct, (struct sockaddr *)&in, sizeof(in)))
		ksft_exit_fail_msg("setup: tcp connect: %s", strerror(errno));
	ksft_print_msg("setup ok: 2 + 1 unix and 1 TCP connection(s) waiting");

	cr_ready();
	cr_wait_sigterm();

	ok = 1;
	for (int i = 0; i < 2; i++) {
		a = accept(ls, NULL, NULL);
		ok = ok && a >= 0 && exchange(cs[i], a, SOCK_STREAM);
	}
	ksft_test_result(ok, "unix stream: both waiting connections accepted, data both ways");
	if (stat(path.sun_path, &st))
		st.st_mode = 0;
	ksft_test_result((st.st_mode & 07777) == 0640,
			 "the socket file keeps mode 0640 (%o)", st.st_mode & 07777);
	a = accept(lq, NULL, NULL);
	ksft_test_result(a >= 0 && exchange(cq, a, SOCK_SEQPACKET), "unix seqpacket (abstract name): accepted, data both ways");
	a = accept(lt, NULL, NULL);
	ksft_test_result(a >= 0 && exchange(ct, a, SOCK_STREAM), "tcp: accepted, data both ways");
	ksft_test_result(none_waiting(ls) && none_waiting(lq) && none_waiting(lt), "no other connection waits");
	len = sizeof(in);
	{
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		struct sockaddr_in bound;
		socklen_t blen = sizeof(bound);

		ksft_test_result(!getpeername(ct, (struct sockaddr *)&peer, &plen) && !getsockname(lt, (struct sockaddr *)&bound, &blen) &&
				 peer.sin_port == bound.sin_port, "the TCP client's peer is the listener's port");
	}
	unlink(path.sun_path);
	ksft_finished();
}

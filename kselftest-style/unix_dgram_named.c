// SPDX-License-Identifier: MIT
/*
 * unix_dgram_named: named unix datagram sockets with datagrams queued. A
 * server bound to a path holds "one" from a client bound to an abstract
 * name and connected to the server, "two" from an unnamed client connected
 * to it, and "three" with a pipe's read end (SCM_RIGHTS) from the named
 * client; a socket bound to an abstract name and connected to itself holds
 * "self". After restart each datagram is read with its sender's address,
 * the clients are still connected to the server (a plain send arrives),
 * the server can answer the named client by its name, and the self-
 * connected socket still talks to itself.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "cr.h"

static socklen_t abstract(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s-%d", name, getpid());
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a->sun_path + 1);
}

static int dgram(void)
{
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (s < 0)
		ksft_exit_fail_msg("setup: socket: %s", strerror(errno));
	return s;
}

/* got reads one datagram: want as data, from the address `from' (len 0:
 * an unnamed sender), and returns the fd it carries, or -1. */
static int got(int s, const char *want, struct sockaddr_un *from, socklen_t fromlen, int *fd)
{
	char buf[64] = { 0 }, ctl[CMSG_SPACE(sizeof(int))];
	struct sockaddr_un src;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr h = { .msg_name = &src, .msg_namelen = sizeof(src), .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(s, &h, MSG_DONTWAIT);
	struct cmsghdr *c;

	if (fd)
		*fd = -1;
	if (n != (ssize_t)strlen(want) || strcmp(buf, want)) {
		ksft_print_msg("got %zd bytes \"%s\", want \"%s\"", n, buf, want);
		return 0;
	}
	if (fromlen == 0 ? h.msg_namelen > offsetof(struct sockaddr_un, sun_path) :
			   h.msg_namelen != fromlen || memcmp(&src, from, fromlen)) {
		ksft_print_msg("\"%s\": sender address of %u bytes, want %u", want, h.msg_namelen, fromlen);
		return 0;
	}
	c = CMSG_FIRSTHDR(&h);
	if (fd && c && c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 1;
}

int main(void)
{
	struct sockaddr_un srv = { .sun_family = AF_UNIX }, named, self;
	socklen_t namedlen, selflen;
	int s, cn, cu, cs, p[2], rfd, ok;
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = "three", .iov_len = 5 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	char buf[16] = { 0 };

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	snprintf(srv.sun_path, sizeof(srv.sun_path), "%s/srv.sock", getenv("CR_DIR") ? getenv("CR_DIR") : ".");
	unlink(srv.sun_path);
	s = dgram();
	cn = dgram();
	cu = dgram();
	cs = dgram();
	namedlen = abstract(&named, "crsub-dgram-client");
	selflen = abstract(&self, "crsub-dgram-self");
	if (bind(s, (struct sockaddr *)&srv, sizeof(srv)) || bind(cn, (struct sockaddr *)&named, namedlen) ||
	    connect(cn, (struct sockaddr *)&srv, sizeof(srv)) || connect(cu, (struct sockaddr *)&srv, sizeof(srv)) ||
	    bind(cs, (struct sockaddr *)&self, selflen) || connect(cs, (struct sockaddr *)&self, selflen) || pipe(p))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	if (send(cn, "one", 3, 0) != 3 || send(cu, "two", 3, 0) != 3 || sendmsg(cn, &h, 0) != 5 ||
	    send(cs, "self", 4, 0) != 4)
		ksft_exit_fail_msg("setup: send: %s", strerror(errno));
	close(p[0]);
	ksft_print_msg("setup ok: 3 datagrams queued at the server, 1 at the self-connected socket");

	cr_ready();
	cr_wait_sigterm();

	ok = got(s, "one", &named, namedlen, NULL) && got(s, "two", NULL, 0, NULL);
	ksft_test_result(ok, "the server reads each datagram with its sender's address");
	ok = got(s, "three", &named, namedlen, &rfd) && rfd >= 0 && write(p[1], "x", 1) == 1 && read(rfd, buf, 1) == 1;
	ksft_test_result(ok, "the third carries the pipe's read end");
	ok = send(cn, "again", 5, 0) == 5 && got(s, "again", &named, namedlen, NULL) &&
	     send(cu, "more", 4, 0) == 4 && got(s, "more", NULL, 0, NULL);
	ksft_test_result(ok, "both clients are still connected to the server");
	ok = sendto(s, "answer", 6, 0, (struct sockaddr *)&named, namedlen) == 6 && got(cn, "answer", &srv, sizeof(srv) - sizeof(srv.sun_path) + strlen(srv.sun_path) + 1, NULL);
	ksft_test_result(ok, "the server answers the named client by its name");
	ok = got(cs, "self", &self, selflen, NULL) && send(cs, "loop", 4, 0) == 4 && got(cs, "loop", &self, selflen, NULL);
	ksft_test_result(ok, "the self-connected socket reads its datagram and talks to itself");
	ksft_test_result(send(cu, "x", 1, MSG_DONTWAIT) == 1, "the unnamed client can still send");
	unlink(srv.sun_path);
	ksft_finished();
}

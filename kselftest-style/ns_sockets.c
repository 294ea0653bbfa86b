// SPDX-License-Identifier: MIT
/*
 * ns_sockets: sockets of a process in network, mount and pid namespaces
 * of its own (unshare), lo up, a root of its own (a bind mount of /,
 * pivot_root'ed to, /dev bound in), a tmpfs mounted in its mount namespace
 * only (the host has an empty directory there):
 *   - a unix stream listener bound to a path in the tmpfs, with one
 *     connection accepted (bytes queued both ways) and one waiting in its
 *     accept queue;
 *   - a unix stream listener on an abstract name (its network namespace's
 *     only), connected to by its child, the pid namespace's init, which
 *     mounted proc and echoes what it reads;
 *   - a unix datagram socket on an abstract name with datagrams queued
 *     from a socket bound to a path in the tmpfs and from an unnamed one,
 *     and one on a path in the tmpfs with a datagram queued from a socket
 *     on an abstract name; a datagram socket connected by name;
 *   - a stream socketpair with bytes queued both ways, one way after a
 *     message carrying a pipe's read end and a UDP socket (SCM_RIGHTS);
 *   - UDP sockets on 127.0.0.1, one connected to the other;
 *   - a TCP listener on 127.0.0.1 with a connection accepted (bytes queued
 *     both ways) and one waiting in its accept queue;
 *   - a raw ICMP socket and a route netlink socket.
 * After the restart it checks from inside that each carries what it
 * carried and works in its namespaces: the datagrams' senders, the
 * abstract names (in /proc/1/net/unix, of the proc its init mounted), the netlink socket seeing
 * its namespace's links (lo only), a ping answered on its lo. The .poke
 * checks from the host that the abstract names are in its network
 * namespace and not in the host's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "cr.h"

static char tmp[64];
static int pid;

static void must(int ok, const char *what)
{
	if (!ok)
		ksft_exit_fail_msg("setup: %s: %s", what, strerror(errno));
}

/* A sockaddr_un for a path in the tmpfs ("/name") or an abstract name ("@name"). */
static socklen_t addr_of(struct sockaddr_un *sa, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (name[0] == '@') {
		int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "crsub-nssock-%d-%s", pid, name + 1);

		return offsetof(struct sockaddr_un, sun_path) + 1 + n;
	}
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s%s", tmp, name);
	return sizeof(*sa);
}

static int unix_bound(int type, const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = addr_of(&sa, name);
	int s = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	must(s >= 0 && bind(s, (struct sockaddr *)&sa, len) == 0, name);
	return s;
}

static int unix_connected(int type, const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = addr_of(&sa, name);
	int s = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	must(s >= 0 && connect(s, (struct sockaddr *)&sa, len) == 0, name);
	return s;
}

/* Whether a datagram came from name (NULL: an unnamed socket). */
static int from_is(struct sockaddr_un *sa, socklen_t len, const char *name)
{
	struct sockaddr_un want;
	socklen_t wlen;

	if (!name)
		return len <= sizeof(sa_family_t);
	wlen = addr_of(&want, name);
	if (name[0] == '@')
		return len == wlen && !memcmp(sa->sun_path, want.sun_path, wlen - offsetof(struct sockaddr_un, sun_path));
	return !strcmp(sa->sun_path, want.sun_path);
}

static int recv_is(int s, const char *want, struct sockaddr_un *from, socklen_t *flen)
{
	char buf[64] = "";
	ssize_t n = recvfrom(s, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)from, flen);

	return n == (ssize_t)strlen(want) && !strcmp(buf, want);
}

static int read_is(int s, const char *want)
{
	char buf[64] = "";
	size_t got = 0;

	while (got < strlen(want)) {
		ssize_t n = recv(s, buf + got, strlen(want) - got, MSG_DONTWAIT);

		if (n <= 0)
			return 0;
		got += n;
	}
	return !strcmp(buf, want);
}

static int readable(int s)
{
	return poll(&(struct pollfd){ .fd = s, .events = POLLIN }, 1, 2000) == 1;
}

static int exchange(int a, int b)
{
	return send(a, "ping", 4, 0) == 4 && readable(b) && read_is(b, "ping") && send(b, "pong", 4, 0) == 4 && readable(a) &&
	       read_is(a, "pong");
}

static int inet_sock(int type, int port, int listening)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	must(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "inet bind");
	if (listening)
		must(listen(s, 8) == 0, "listen");
	return s;
}

static int inet_connected(int type, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	must(s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "inet connect");
	return s;
}

static int accept_now(int l)
{
	if (poll(&(struct pollfd){ .fd = l, .events = POLLIN }, 1, 2000) != 1)
		return -1;
	return accept4(l, NULL, NULL, SOCK_CLOEXEC);
}

static int none_waiting(int l)
{
	return poll(&(struct pollfd){ .fd = l, .events = POLLIN }, 1, 0) == 0;
}

/* The links a route netlink socket lists: their indexes summed, and how many. */
static int netlink_links(int nl, int *count)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 7 },
		  .i = { .ifi_family = AF_UNSPEC } };
	char buf[32768];
	int sum = 0;

	*count = 0;
	if (send(nl, &req, sizeof(req), 0) != sizeof(req))
		return -1;
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);

		if (n <= 0)
			return -1;
		for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return sum;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			if (h->nlmsg_type == RTM_NEWLINK) {
				sum += ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
				(*count)++;
			}
		}
	}
}

static unsigned short icmp_sum(void *b, int len)
{
	unsigned short *p = b;
	unsigned int s = 0;

	for (; len > 1; len -= 2)
		s += *p++;
	s = (s >> 16) + (s & 0xffff);
	s += s >> 16;
	return ~s;
}

/* A ping to 127.0.0.1 through the raw socket, answered. */
static int ping(int raw)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.id = htons(0x4e53), .un.echo.sequence = htons(1) };
	char buf[256];

	h.checksum = icmp_sum(&h, sizeof(h));
	if (sendto(raw, &h, sizeof(h), 0, (struct sockaddr *)&to, sizeof(to)) != sizeof(h))
		return 0;
	for (int i = 0; i < 4; i++) {
		if (poll(&(struct pollfd){ .fd = raw, .events = POLLIN }, 1, 2000) != 1)
			return 0;
		ssize_t n = recv(raw, buf, sizeof(buf), 0);
		if (n < 28)
			return 0;
		struct icmphdr *r = (void *)(buf + (buf[0] & 15) * 4);
		if (r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(0x4e53))
			return 1;
	}
	return 0;
}

/* Whether /proc/1/net/unix (the init's: its network namespace's) lists an abstract name. */
static int lists_abstract(const char *name)
{
	struct sockaddr_un sa;
	char want[128], line[512];
	socklen_t len = addr_of(&sa, name);
	FILE *f = fopen("/proc/1/net/unix", "r");
	int found = 0;

	snprintf(want, sizeof(want), " @%.*s\n", (int)(len - offsetof(struct sockaddr_un, sun_path) - 1), sa.sun_path + 1);
	while (f && fgets(line, sizeof(line), f))
		found |= strstr(line, want) != NULL;
	if (f)
		fclose(f);
	return found;
}

int main(void)
{
	int pipefd[2], pair[2], sync_pipe[2], status, lo;
	int ls, a1, c1, c2, la, aa, dgs, dgp, dgc, dgn, dgpath, dga, u1, u2, u3, tl, ta, tc, tc2, raw, nl;
	struct ifreq ifr = { .ifr_name = "lo" };
	struct sockaddr_un from;
	socklen_t flen;
	pid_t init;
	char c;

	cr_init();
	ksft_print_header();
	ksft_set_plan(13);
	pid = getpid();
	if (unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) < 0) {
		ksft_print_msg("unshare: %s\n", strerror(errno));
		return 4;
	}
	lo = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	must(lo >= 0 && ioctl(lo, SIOCGIFFLAGS, &ifr) == 0, "lo flags");
	ifr.ifr_flags |= IFF_UP;
	must(ioctl(lo, SIOCSIFFLAGS, &ifr) == 0, "lo up");
	close(lo);
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private");
	/* A root of its own: / alone, and the host's /dev bound in. */
	{
		char root[4096], dev[4200];

		snprintf(root, sizeof(root), "%s/root", cr_dir());
		snprintf(dev, sizeof(dev), "%s/dev", root);
		must(mkdir(root, 0755) == 0, "mkdir root");
		must(mount("/", root, NULL, MS_BIND, NULL) == 0, "bind /");
		must(mount("/dev", dev, NULL, MS_BIND, NULL) == 0, "bind /dev");
		must(chdir(root) == 0 && syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
		must(umount2(".", MNT_DETACH) == 0 && chdir(cr_dir()) == 0, "umount the old root");
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/t", cr_dir()) >= sizeof(tmp))
		ksft_exit_fail_msg("setup: %s is too long for socket paths", cr_dir());
	must(mkdir(tmp, 0755) == 0, "mkdir t");
	must(mount("crsub-nssock", tmp, "tmpfs", 0, "size=1m") == 0, "mount tmpfs");

	/* Unix stream on a path: one accepted, bytes both ways; one waiting. */
	ls = unix_bound(SOCK_STREAM, "/stream.sock");
	must(listen(ls, 8) == 0, "listen");
	c1 = unix_connected(SOCK_STREAM, "/stream.sock");
	a1 = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	must(a1 >= 0, "accept");
	must(send(c1, "to-a1", 5, 0) == 5 && send(a1, "to-c1", 5, 0) == 5, "queue on the stream");
	c2 = unix_connected(SOCK_STREAM, "/stream.sock");

	/* Unix stream on an abstract name, its client the init, which echoes. */
	la = unix_bound(SOCK_STREAM, "@listen");
	must(listen(la, 8) == 0, "listen abstract");
	must(pipe2(sync_pipe, O_CLOEXEC) == 0, "pipe");
	init = fork();
	must(init >= 0, "fork");
	if (init == 0) {
		char buf[16];
		ssize_t n;
		int s;

		/* proc for its pid namespace: /proc/1/net is the namespace's. */
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			_exit(1);
		s = unix_connected(SOCK_STREAM, "@listen");
		cr_write_all(sync_pipe[1], getpid() == 1 ? "1" : "x", 1, "sync");
		while ((n = read(s, buf, sizeof(buf))) > 0)
			if (write(s, buf, n) != n)
				_exit(1);
		_exit(0);
	}
	close(sync_pipe[1]);
	must(read(sync_pipe[0], &c, 1) == 1 && c == '1', "the child is the init of its pid namespace");
	close(sync_pipe[0]);
	aa = accept_now(la);
	must(aa >= 0, "accept abstract");

	/* Datagrams queued for an abstract name and for a path. */
	dgs = unix_bound(SOCK_DGRAM, "@dgram");
	dgp = unix_bound(SOCK_DGRAM, "/dgram-client.sock");
	dgn = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa;
		socklen_t len = addr_of(&sa, "@dgram");

		must(sendto(dgp, "d1", 2, 0, (struct sockaddr *)&sa, len) == 2 &&
			     sendto(dgp, "d2", 2, 0, (struct sockaddr *)&sa, len) == 2 &&
			     sendto(dgn, "d3", 2, 0, (struct sockaddr *)&sa, len) == 2,
		     "datagrams to the abstract name");
	}
	dgpath = unix_bound(SOCK_DGRAM, "/dgram-server.sock");
	dga = unix_bound(SOCK_DGRAM, "@dgram-client");
	{
		struct sockaddr_un sa;
		socklen_t len = addr_of(&sa, "/dgram-server.sock");

		must(sendto(dga, "p1", 2, 0, (struct sockaddr *)&sa, len) == 2, "a datagram to the path");
	}
	dgc = unix_connected(SOCK_DGRAM, "@dgram");

	/* A socketpair: bytes both ways, and a message carrying a pipe's end and a UDP socket. */
	must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
	must(send(pair[1], "pair1", 5, 0) == 5, "queue on the pair");
	must(pipe2(pipefd, O_CLOEXEC) == 0 && write(pipefd[1], "piped", 5) == 5, "pipe");
	u3 = inet_sock(SOCK_DGRAM, 7003, 0);
	{
		char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = "rights", .iov_len = 6 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		int fds[2] = { pipefd[0], u3 };

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		must(sendmsg(pair[0], &m, 0) == 6, "SCM_RIGHTS");
	}
	close(pipefd[0]);
	close(u3);
	/*
	 * Bytes after the message, not before: a peek cannot tell bytes
	 * without fds from the bytes after them that carry some, which a
	 * restart then sends as one (files/socket_unix_queue.go).
	 */
	must(send(pair[0], "pair0", 5, 0) == 5, "queue on the pair");

	/* UDP, and TCP with one connection accepted and one waiting. */
	u1 = inet_sock(SOCK_DGRAM, 7001, 0);
	u2 = inet_connected(SOCK_DGRAM, 7001);
	tl = inet_sock(SOCK_STREAM, 7002, 1);
	tc = inet_connected(SOCK_STREAM, 7002);
	ta = accept_now(tl);
	must(ta >= 0, "accept TCP");
	must(send(tc, "to-ta", 5, 0) == 5 && send(ta, "to-tc", 5, 0) == 5, "queue on TCP");
	tc2 = inet_connected(SOCK_STREAM, 7002);

	raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	must(raw >= 0, "raw ICMP socket");
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	must(nl >= 0 && bind(nl, (struct sockaddr *)&(struct sockaddr_nl){ .nl_family = AF_NETLINK }, sizeof(struct sockaddr_nl)) == 0,
	     "netlink socket");
	{
		int n, links = netlink_links(nl, &n);

		must(links == 1 && n == 1, "lo is the namespace's only link");
	}
	must(lists_abstract("@listen") && lists_abstract("@dgram"), "the abstract names in /proc/1/net/unix");
	{
		int f = open(cr_path("names"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		dprintf(f, "crsub-nssock-%d-listen\ncrsub-nssock-%d-dgram\n", pid, pid);
		close(f);
	}
	ksft_print_msg("setup ok: init %d\n", init);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(read_is(a1, "to-a1") && read_is(c1, "to-c1") && exchange(c1, a1),
			 "unix stream on a path: queued bytes both ways, then more");
	int a2 = accept_now(ls);
	ksft_test_result(a2 >= 0 && exchange(c2, a2) && none_waiting(ls), "its waiting connection is accepted");
	int c3 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa;
		socklen_t len = addr_of(&sa, "/stream.sock");
		int a3 = connect(c3, (struct sockaddr *)&sa, len) ? -1 : accept_now(ls);

		ksft_test_result(a3 >= 0 && exchange(c3, a3), "its path takes new connections");
	}
	{
		char buf[8] = "";

		ksft_test_result(send(aa, "echo", 4, 0) == 4 && poll(&(struct pollfd){ .fd = aa, .events = POLLIN }, 1, 2000) == 1 &&
					 recv(aa, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "echo", 4),
				 "the init echoes over the abstract name's connection");
	}
	int ok = 1;
	flen = sizeof(from);
	ok &= recv_is(dgs, "d1", &from, &flen) && from_is(&from, flen, "/dgram-client.sock");
	flen = sizeof(from);
	ok &= recv_is(dgs, "d2", &from, &flen) && from_is(&from, flen, "/dgram-client.sock");
	flen = sizeof(from);
	ok &= recv_is(dgs, "d3", &from, &flen) && from_is(&from, flen, NULL);
	ksft_test_result(ok, "datagrams queued for the abstract name, from their senders");
	flen = sizeof(from);
	ksft_test_result(recv_is(dgpath, "p1", &from, &flen) && from_is(&from, flen, "@dgram-client"),
			 "the datagram queued for the path, from the abstract name");
	flen = sizeof(from);
	ksft_test_result(send(dgc, "d4", 2, 0) == 2 && recv_is(dgs, "d4", &from, &flen),
			 "the socket connected to the abstract name sends to it");
	{
		char cbuf[CMSG_SPACE(2 * sizeof(int))], data[8] = "", piped[8] = "";
		struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) - 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct sockaddr_in sin;
		socklen_t slen = sizeof(sin);
		int fds[2] = { -1, -1 };

		ssize_t n;

		n = recvmsg(pair[1], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		ok = read_is(pair[1], "pair0") && read_is(pair[0], "pair1");
		ok &= n == 6 && !strcmp(data, "rights") && CMSG_FIRSTHDR(&m) && CMSG_FIRSTHDR(&m)->cmsg_type == SCM_RIGHTS;
		if (!ok)
			ksft_print_msg("the message: %zd bytes '%s', %zu of control\n", n, data, (size_t)m.msg_controllen);
		if (ok)
			memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(fds));
		ksft_test_result(ok && exchange(pair[0], pair[1]), "the socketpair: queued bytes both ways, a message with fds");
		ksft_test_result(fds[0] >= 0 && read(fds[0], piped, 5) == 5 && !strcmp(piped, "piped") && fds[1] >= 0 &&
					 getsockname(fds[1], (struct sockaddr *)&sin, &slen) == 0 && ntohs(sin.sin_port) == 7003,
				 "the fds it carried: the pipe's end with its bytes, the UDP socket bound");
	}
	{
		char buf[8] = "";
		struct sockaddr_in sin;
		socklen_t slen = sizeof(sin);

		ok = send(u2, "udp", 3, 0) == 3 && poll(&(struct pollfd){ .fd = u1, .events = POLLIN }, 1, 2000) == 1 &&
		     recvfrom(u1, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen) == 3 && !memcmp(buf, "udp", 3);
		ok &= sendto(u1, "back", 4, 0, (struct sockaddr *)&sin, slen) == 4 &&
		      poll(&(struct pollfd){ .fd = u2, .events = POLLIN }, 1, 2000) == 1 && recv(u2, buf, sizeof(buf), 0) == 4;
		ksft_test_result(ok, "UDP on its lo, both ways");
	}
	int ta2 = accept_now(tl);
	ksft_test_result(read_is(ta, "to-ta") && read_is(tc, "to-tc") && exchange(tc, ta) && ta2 >= 0 && exchange(tc2, ta2),
			 "TCP: queued bytes both ways, then more; the waiting connection accepted");
	{
		int n, links = netlink_links(nl, &n);

		ksft_test_result(links == 1 && n == 1 && ping(raw), "netlink sees its namespace's links (lo), a ping on its lo is answered");
	}
	ksft_test_result(lists_abstract("@listen") && lists_abstract("@dgram") && kill(init, SIGKILL) == 0 &&
				 waitpid(init, &status, 0) == init,
			 "the abstract names are its network namespace's; the init is its child");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * netlink: a routing netlink socket bound to its port id and joined to
 * RTNLGRP_LINK and RTNLGRP_IPV4_IFADDR, and an unbound one. After restart
 * the first keeps its port id and groups, and both get answers to
 * RTM_GETLINK.
 */
#define _GNU_SOURCE
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include "cr.h"

static unsigned int portid(int fd)
{
	struct sockaddr_nl a;
	socklen_t l = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return 0;
	return a.nl_pid;
}

/* Asks for the links; 1 if the kernel answered with one. */
static int ask(int fd)
{
	struct { struct nlmsghdr h; struct rtgenmsg g; } req = {
		{ sizeof(req), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 }, { AF_UNSPEC } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	static char buf[65536];
	ssize_t n;

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return 0;
	n = recv(fd, buf, sizeof(buf), 0);
	return n > 0 && ((struct nlmsghdr *)buf)->nlmsg_type == RTM_NEWLINK;
}

int main(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int bound, unbound, g1 = RTNLGRP_LINK, g5 = RTNLGRP_IPV4_IFADDR;
	unsigned int before, groups[4] = { 0 };
	socklen_t len = sizeof(groups);

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	bound = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	unbound = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (bound < 0 || unbound < 0 || bind(bound, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(bound, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g1, sizeof(g1)) ||
	    setsockopt(bound, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g5, sizeof(g5)))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	before = portid(bound);
	ksft_print_msg("setup ok: port id %u", before);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(portid(bound) == before, "port id kept (%u, was %u)", portid(bound), before);
	getsockopt(bound, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &len);
	ksft_test_result(groups[0] == (1u << (g1 - 1) | 1u << (g5 - 1)), "groups %u and %u (mask %#x)", g1, g5, groups[0]);
	ksft_test_result(ask(bound), "the bound socket gets an answer to RTM_GETLINK");
	ksft_test_result(ask(unbound), "the unbound one too");
	ksft_finished();
}

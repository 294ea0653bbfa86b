package restart_test

import (
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// netlinkSubject holds a routing netlink socket bound to a port id and
// joined to RTNLGRP_LINK (1) and RTNLGRP_IPV4_IFADDR (5) as fd 5, and an
// unbound one as fd 6; it writes fd 5's port id to "portid". On SIGUSR1 it
// checks fd 5's port id and groups, asks the kernel for its links on both,
// and reports (a failed request as minus its errno).
const netlinkSubject = `#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
static unsigned portid(int fd) { struct sockaddr_nl a; socklen_t l = sizeof a; getsockname(fd, (struct sockaddr *)&a, &l); return a.nl_pid; }
static int ask(int fd) {
	struct { struct nlmsghdr h; struct rtgenmsg g; } req = { { sizeof req, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 }, { AF_UNSPEC } };
	struct sockaddr_nl k = { .nl_family = AF_NETLINK };
	if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k) < 0) return -errno;
	/* An answer that never comes is a report, not a hang. */
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[32768];
	ssize_t n = recv(fd, buf, sizeof buf, 0);
	if (n < 0) return -errno;
	return n > 0 && ((struct nlmsghdr *)buf)->nlmsg_type == RTM_NEWLINK;
}
int main(void) {
	signal(SIGUSR1, on_usr1);
	int a = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), b = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (a < 0 || b < 0 || bind(a, (struct sockaddr *)&sa, sizeof sa)) return 1;
	int g1 = RTNLGRP_LINK, g5 = RTNLGRP_IPV4_IFADDR;
	setsockopt(a, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g1, sizeof g1);
	setsockopt(a, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g5, sizeof g5);
	dup2(a, 5);
	dup2(b, 6);
	close(a);
	close(b);
	unsigned before = portid(5);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	unsigned groups[4] = {0};
	socklen_t l = sizeof groups;
	getsockopt(5, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &l);
	FILE *f = fopen("report", "w");
	fprintf(f, "portid=%s groups=%#x ask5=%d ask6=%d", portid(5) == before ? "same" : "changed", groups[0], ask(5), ask(6));
	fclose(f);
	for (;;) pause();
}
`

// Netlink sockets come back bound to their port ids, in their groups, and
// answer requests.
func TestNetlinkSockets(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, netlinkSubject))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "portid=same groups=0x11 ask5=1 ask6=1" {
		t.Fatalf("restored netlink sockets: %q", got)
	}
}

// SPDX-License-Identifier: MIT
/*
 * netns_links: a process in a network namespace of its own (unshare), with
 * lo up, a veth to the host (addresses on both ends, the host end named
 * crnl<pid>), a veth pair and a bridge inside, a route, a setting, and a
 * TCP connection between two of its addresses. After the restart it checks
 * from inside that the links, addresses, route and setting are back, and
 * that the connection carries bytes both ways; netns_links.poke reaches it
 * from the host through the veth's host end, made again there (.poke).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "cr.h"
#include "netif.h"

static int has_mac(int s, const char *ifname, const char *mac)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	return !ioctl(s, SIOCGIFHWADDR, &ifr) && !memcmp(ifr.ifr_hwaddr.sa_data, mac, 6);
}

static int exchange(int a, int b, const char *msg)
{
	char buf[32] = "";

	if (write(a, msg, strlen(msg)) != (ssize_t)strlen(msg))
		return 0;
	return read(b, buf, sizeof(buf) - 1) == (ssize_t)strlen(msg) && !strcmp(buf, msg);
}

static int file_has(const char *path, const char *want)
{
	char buf[256] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	return n > 0 && strstr(buf, want);
}

int main(void)
{
	struct sockaddr_in srv = { .sin_family = AF_INET, .sin_port = htons(7000) }, cli = { .sin_family = AF_INET };
	char cmd[2048], peer[IFNAMSIZ], hostaddr[32], ctraddr[32], subnet[32];
	int pid = getpid(), host, l, c, a, mtu = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);
	if (system("command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1"))
		ksft_exit_skip("needs ip (iproute2) and nsenter");
	snprintf(peer, sizeof(peer), "crnl%d", pid);
	/* A /30 of 10.214.0.0/16 of its own, by pid. */
	snprintf(subnet, sizeof(subnet), "10.214.%d.%d", (pid >> 6) & 255, (pid & 63) * 4);
	snprintf(hostaddr, sizeof(hostaddr), "10.214.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 1);
	snprintf(ctraddr, sizeof(ctraddr), "10.214.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 2);
	host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (host < 0 || unshare(CLONE_NEWNET))
		ksft_exit_fail_msg("setup: unshare(CLONE_NEWNET): %s", strerror(errno));
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip link set lo up; "
		 "ip link add eth0 mtu 1400 address 02:00:00:00:d1:02 type veth peer name %s netns /proc/%d/fd/%d; "
		 "ip addr add %s/30 dev eth0; ip link set eth0 up; "
		 "nsenter --net=/proc/%d/fd/%d sh -c 'ip addr add %s/30 dev %s && ip link set %s up'; "
		 "ip link add in0 type veth peer name in1; ip link add br0 type bridge; ip link set in1 master br0; "
		 "ip addr add 10.66.0.1/24 dev br0; ip addr add 10.66.0.2/24 dev in0; "
		 "ip link set in0 up; ip link set in1 up; ip link set br0 up; "
		 "ip route add 192.0.2.0/24 via %s dev eth0",
		 peer, pid, host, ctraddr, pid, host, hostaddr, peer, peer, hostaddr);
	/* fcntl: the fd must reach ip and nsenter, then go. */
	fcntl(host, F_SETFD, 0);
	if (system(cmd))
		ksft_exit_fail_msg("setup: %s", cmd);
	close(host);
	if (system("echo 1 > /proc/sys/net/ipv4/ip_forward"))
		ksft_exit_fail_msg("setup: ip_forward");
	inet_pton(AF_INET, "10.66.0.1", &srv.sin_addr);
	inet_pton(AF_INET, "10.66.0.2", &cli.sin_addr);
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (void *)&srv, sizeof(srv)) || listen(l, 1) || bind(c, (void *)&cli, sizeof(cli)) ||
	    connect(c, (void *)&srv, sizeof(srv)) || (a = accept(l, NULL, NULL)) < 0 || !exchange(c, a, "before"))
		ksft_exit_fail_msg("setup: TCP connection: %s", strerror(errno));
	{
		int f = open(cr_path("addr"), O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dprintf(f, "%s %s\n", ctraddr, peer);
		close(f);
	}
	ksft_print_msg("setup ok: eth0 %s, host end %s %s\n", ctraddr, peer, hostaddr);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(link_up(l, "lo", NULL), "lo is up");
	int eth0_up = link_up(l, "eth0", &mtu);
	ksft_test_result(eth0_up && mtu == 1400, "eth0 is up with MTU 1400 (%d)", mtu);
	ksft_test_result(has_addr("eth0", ctraddr) && has_addr("br0", "10.66.0.1") && has_addr("in0", "10.66.0.2"),
			 "addresses on eth0, br0, in0");
	/* Not /sys/class/net: sysfs shows the namespace of whoever mounted it. */
	ksft_test_result(has_mac(l, "eth0", "\x02\x00\x00\x00\xd1\x02"), "eth0's hardware address");
	ksft_test_result(!system("ip -o link show dev in1 | grep -q 'master br0'"), "in1 is a port of br0");
	ksft_test_result(!system("ip route show 192.0.2.0/24 | grep -q 'via'"), "the route to 192.0.2.0/24");
	ksft_test_result(file_has("/proc/sys/net/ipv4/ip_forward", "1"), "net.ipv4.ip_forward = 1");
	ksft_test_result(exchange(c, a, "after1") && exchange(a, c, "after2"), "the TCP connection carries bytes both ways");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * sock_opts: sockets that were made and given options but never connected:
 * a TCP socket (state CLOSE) with socket, IP and TCP level options, linger,
 * buffer locks and SO_BINDTODEVICE; one bound to a loopback port; an IPv6
 * UDP socket bound to an address that is not local while IP_FREEBIND was
 * on (off since); a raw ICMP socket with a filter; a unix socket with
 * SO_PASSCRED, and a classic BPF socket filter (SO_ATTACH_FILTER), locked. After restart each has its options again, the bound one its
 * port, and a fresh connect from the unconnected TCP socket works.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include "cr.h"

/* <linux/icmp.h> clashes with <net/if.h>: its filter, here. */
#define ICMP_FILTER 1
struct icmp_filter {
	uint32_t data;
};
#ifndef ICMP_ECHO
#define ICMP_ECHO 8
#endif
#ifndef IFNAMSIZ
#define IFNAMSIZ 16
#endif

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

struct opt {
	int level, opt, val;
	const char *name;
};

/* IP_TOS first: it sets SO_PRIORITY too. */
static const struct opt tcp_opts[] = {
	{ SOL_IP, IP_TOS, IPTOS_THROUGHPUT, "IP_TOS" },
	{ SOL_IP, IP_TTL, 33, "IP_TTL" },
	{ SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY" },
	{ SOL_SOCKET, SO_RCVLOWAT, 7, "SO_RCVLOWAT" },
	{ SOL_SOCKET, SO_MARK, 0x1234, "SO_MARK" },
	{ SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE" },
	{ SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE" },
	{ SOL_SOCKET, SO_BUF_LOCK, 1, "SO_BUF_LOCK" },
	{ SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY" },
	{ SOL_TCP, TCP_CORK, 1, "TCP_CORK" },
	{ SOL_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE" },
	{ SOL_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL" },
	{ SOL_TCP, TCP_KEEPCNT, 3, "TCP_KEEPCNT" },
	{ SOL_TCP, TCP_USER_TIMEOUT, 4321, "TCP_USER_TIMEOUT" },
};
#define NOPTS (int)(sizeof(tcp_opts) / sizeof(tcp_opts[0]))

static int getint(int s, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(s, level, opt, &v, &len))
		return -1;
	return v;
}

static void setint(int s, int level, int opt, int v, const char *name)
{
	if (setsockopt(s, level, opt, &v, sizeof(v)))
		ksft_exit_fail_msg("setup: %s: %s\n", name, strerror(errno));
}

static int check_tcp(int s)
{
	struct linger lg;
	socklen_t len = sizeof(lg);
	char dev[IFNAMSIZ] = { 0 };
	socklen_t dlen = sizeof(dev);
	int ok = 1;

	for (int i = 0; i < NOPTS; i++) {
		int v = getint(s, tcp_opts[i].level, tcp_opts[i].opt);
		if (v != tcp_opts[i].val) {
			ksft_print_msg("%s is %d, want %d\n", tcp_opts[i].name, v, tcp_opts[i].val);
			ok = 0;
		}
	}
	if (getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len) || !lg.l_onoff || lg.l_linger != 30) {
		ksft_print_msg("SO_LINGER is %d/%d\n", lg.l_onoff, lg.l_linger);
		ok = 0;
	}
	if (getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, dev, &dlen) || strcmp(dev, "lo")) {
		ksft_print_msg("SO_BINDTODEVICE is \"%s\"\n", dev);
		ok = 0;
	}
	return ok;
}

static int port_of(int s)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	return getsockname(s, (struct sockaddr *)&sa, &len) ? -1 : ntohs(sa.sin_port);
}

int main(void)
{
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 far = { .sin6_family = AF_INET6 };
	struct linger lg = { .l_onoff = 1, .l_linger = 30 };
	struct icmp_filter filt = { .data = 1 << ICMP_ECHO }, filt2 = { 0 };
	socklen_t flen = sizeof(filt2);
	int tcp, bound, fb, icmp, un, port, l, c, a;
	/* Accepts datagrams of up to 64 bytes, drops longer ones. */
	struct sock_filter prog[] = { { BPF_LD | BPF_W | BPF_LEN, 0, 0, 0 }, { BPF_JMP | BPF_JGT | BPF_K, 1, 0, 64 },
				      { BPF_RET | BPF_K, 0, 0, 0xffff }, { BPF_RET | BPF_K, 0, 0, 0 } };
	struct sock_fprog fprog = { .len = 4, .filter = prog };
	struct sock_filter got[8];
	socklen_t glen;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);

	tcp = socket(AF_INET, SOCK_STREAM, 0);
	if (tcp < 0)
		ksft_exit_fail_msg("setup: socket: %s\n", strerror(errno));
	for (int i = 0; i < NOPTS; i++)
		setint(tcp, tcp_opts[i].level, tcp_opts[i].opt, tcp_opts[i].val, tcp_opts[i].name);
	if (setsockopt(tcp, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) ||
	    setsockopt(tcp, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3))
		ksft_exit_fail_msg("setup: SO_LINGER/SO_BINDTODEVICE: %s\n", strerror(errno));
	if (!check_tcp(tcp))
		ksft_exit_fail_msg("setup: options did not stick");

	bound = socket(AF_INET, SOCK_STREAM, 0);
	setint(bound, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (bound < 0 || bind(bound, (struct sockaddr *)&lo, sizeof(lo)))
		ksft_exit_fail_msg("setup: bind: %s\n", strerror(errno));
	port = port_of(bound);

	fb = socket(AF_INET6, SOCK_DGRAM, 0);
	inet_pton(AF_INET6, "2001:db8::42", &far.sin6_addr);
	far.sin6_port = htons(port);
	setint(fb, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
	if (bind(fb, (struct sockaddr *)&far, sizeof(far)))
		ksft_exit_fail_msg("setup: freebind bind: %s\n", strerror(errno));
	setint(fb, SOL_IP, IP_FREEBIND, 0, "IP_FREEBIND");

	icmp = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (icmp < 0 || setsockopt(icmp, SOL_RAW, ICMP_FILTER, &filt, sizeof(filt)))
		ksft_exit_fail_msg("setup: raw ICMP socket: %s\n", strerror(errno));

	un = socket(AF_UNIX, SOCK_DGRAM, 0);
	setint(un, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	if (setsockopt(un, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)))
		ksft_exit_fail_msg("setup: SO_ATTACH_FILTER: %s\n", strerror(errno));
	setint(un, SOL_SOCKET, SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(check_tcp(tcp), "unconnected TCP socket keeps its options");
	ksft_test_result(port_of(bound) == port && getint(bound, SOL_SOCKET, SO_REUSEADDR) == 1,
			 "bound TCP socket keeps its port and SO_REUSEADDR");
	{
		struct sockaddr_in6 got;
		socklen_t glen = sizeof(got);
		ksft_test_result(!getsockname(fb, (struct sockaddr *)&got, &glen) &&
				 !memcmp(&got.sin6_addr, &far.sin6_addr, 16) && got.sin6_port == far.sin6_port &&
				 getint(fb, SOL_IP, IP_FREEBIND) == 0,
				 "UDP socket bound to a foreign address, IP_FREEBIND off");
	}
	ksft_test_result(!getsockopt(icmp, SOL_RAW, ICMP_FILTER, &filt2, &flen) && filt2.data == filt.data,
			 "raw ICMP socket keeps its filter");
	ksft_test_result(getint(un, SOL_SOCKET, SO_PASSCRED) == 1, "unix socket keeps SO_PASSCRED");
	glen = 8;
	ksft_test_result(!getsockopt(un, SOL_SOCKET, SO_GET_FILTER, got, &glen) && glen == 4 && !memcmp(got, prog, sizeof(prog)) &&
			 getint(un, SOL_SOCKET, SO_LOCK_FILTER) == 1,
			 "unix socket keeps its socket filter, locked");

	/* The unconnected socket still connects (corked, not bound to a port). */
	l = socket(AF_INET, SOCK_STREAM, 0);
	lo.sin_port = 0;
	c = -1;
	if (l >= 0 && !bind(l, (struct sockaddr *)&lo, sizeof(lo)) && !listen(l, 1)) {
		lo.sin_port = htons(port_of(l));
		c = connect(tcp, (struct sockaddr *)&lo, sizeof(lo));
	}
	a = c == 0 ? accept(l, NULL, NULL) : -1;
	ksft_test_result(a >= 0, "unconnected TCP socket connects after restart");
	ksft_finished();
}

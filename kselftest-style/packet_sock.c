// SPDX-License-Identifier: MIT
/*
 * packet_sock: packet sockets (AF_PACKET) with their state. A SOCK_DGRAM
 * socket for IPv4 bound to lo, TPACKET_V2, a reserve, PACKET_AUXDATA, a
 * unicast membership, an all-multicast one added twice, in a fanout group, with an RX ring
 * mapped shared; a SOCK_RAW socket for nothing (protocol 0) with a
 * promiscuous membership and PACKET_ORIGDEV; a SOCK_PACKET socket bound
 * to lo by name. After restart each has its binding, options and
 * memberships (lo stays all-multicast until the membership added twice is
 * dropped twice, promiscuous until the promiscuous one is), and
 * the ring, at the address it was mapped at, receives a UDP datagram sent
 * to 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "cr.h"

#define RING_FRAME 2048
#define RING_FRAMES 8
#define RING_BLOCK 4096
#define FANOUT_ID 77

static int opt(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, SOL_PACKET, name, &v, &l))
		return -1;
	return v;
}

static int membership(int fd, int op, int ifindex, int type, const unsigned char *addr, int alen)
{
	struct packet_mreq m = { .mr_ifindex = ifindex, .mr_type = type, .mr_alen = alen };

	if (alen)
		memcpy(m.mr_address, addr, alen);
	return setsockopt(fd, SOL_PACKET, op, &m, sizeof(m));
}

/*
 * lo's interface flags (IFF_*) as the device has them: sysfs shows the
 * promiscuity and all-multicast counts of memberships, SIOCGIFFLAGS only
 * what was asked for with SIOCSIFFLAGS.
 */
static int ifflags(void)
{
	FILE *f = fopen("/sys/class/net/lo/flags", "r");
	int v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%i", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* Whether /proc/self/maps shows a mapping of socket fd starting at addr. */
static int mapped(void *addr, int fd)
{
	char line[512], want[64];
	struct stat st;
	FILE *f;
	int found = 0;

	if (fstat(fd, &st))
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)st.st_ino);
	f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strtoul(line, NULL, 16) == (unsigned long)addr && strstr(line, want);
	fclose(f);
	return found;
}

/* The frames of the ring that hold a UDP datagram with payload msg. */
static int ring_has(unsigned char *ring, const char *msg)
{
	for (int i = 0; i < RING_FRAMES; i++) {
		struct tpacket2_hdr *h = (void *)(ring + i * RING_FRAME);

		if (!(h->tp_status & TP_STATUS_USER))
			continue;
		if (h->tp_snaplen >= strlen(msg) && memmem((unsigned char *)h + h->tp_mac, h->tp_snaplen, msg, strlen(msg)))
			return 1;
		h->tp_status = TP_STATUS_KERNEL;
	}
	return 0;
}

int main(void)
{
	static const unsigned char mac[6] = { 2, 0, 0, 0x12, 0x34, 0x56 };
	struct tpacket_req req = { RING_BLOCK, RING_FRAMES * RING_FRAME / RING_BLOCK, RING_FRAME, RING_FRAMES };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int lo = if_nametoindex("lo"), dgram, raw, spkt, udp, v2 = TPACKET_V2, reserve = 16, one = 1, fanout = FANOUT_ID;
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = lo };
	struct sockaddr sp = { .sa_family = AF_PACKET };
	struct sockaddr_ll got;
	struct sockaddr gotsp;
	socklen_t len;
	unsigned char *ring;
	struct pollfd pfd;
	int received = 0, flags[3];

	cr_init();
	ksft_print_header();
	ksft_set_plan(9);
	dgram = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
	raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	spkt = socket(AF_PACKET, SOCK_PACKET | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (dgram < 0 || raw < 0 || spkt < 0) {
		if (errno == EPERM || errno == EACCES)
			ksft_exit_skip("packet sockets need CAP_NET_RAW");
		ksft_exit_fail_msg("socket: %s", strerror(errno));
	}
	strcpy(sp.sa_data, "lo");
	if (!lo || bind(dgram, (struct sockaddr *)&ll, sizeof(ll)) || bind(spkt, &sp, sizeof(sp)) ||
	    setsockopt(dgram, SOL_PACKET, PACKET_VERSION, &v2, sizeof(v2)) ||
	    setsockopt(dgram, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof(reserve)) ||
	    setsockopt(dgram, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) ||
	    membership(dgram, PACKET_ADD_MEMBERSHIP, lo, PACKET_MR_UNICAST, mac, 6) ||
	    membership(dgram, PACKET_ADD_MEMBERSHIP, lo, PACKET_MR_ALLMULTI, NULL, 0) ||
	    membership(dgram, PACKET_ADD_MEMBERSHIP, lo, PACKET_MR_ALLMULTI, NULL, 0) ||
	    setsockopt(dgram, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) ||
	    setsockopt(dgram, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(fanout)) ||
	    membership(raw, PACKET_ADD_MEMBERSHIP, lo, PACKET_MR_PROMISC, NULL, 0) ||
	    setsockopt(raw, SOL_PACKET, PACKET_ORIGDEV, &one, sizeof(one)))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ring = mmap(NULL, RING_FRAMES * RING_FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, dgram, 0);
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ring == MAP_FAILED || udp < 0)
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ksft_print_msg("setup ok: ring at %p", ring);

	cr_ready();
	cr_wait_sigterm();

	len = sizeof(got);
	memset(&got, 0, sizeof(got));
	getsockname(dgram, (struct sockaddr *)&got, &len);
	ksft_test_result(got.sll_ifindex == lo && got.sll_protocol == htons(ETH_P_IP),
			 "dgram socket bound to lo for IPv4 (index %d, protocol %#x)", got.sll_ifindex, ntohs(got.sll_protocol));
	ksft_test_result(opt(dgram, PACKET_VERSION) == TPACKET_V2 && opt(dgram, PACKET_RESERVE) == reserve &&
			 opt(dgram, PACKET_AUXDATA) == 1 && opt(dgram, PACKET_ORIGDEV) == 0,
			 "dgram socket: version %d, reserve %d, auxdata %d, origdev %d", opt(dgram, PACKET_VERSION),
			 opt(dgram, PACKET_RESERVE), opt(dgram, PACKET_AUXDATA), opt(dgram, PACKET_ORIGDEV));
	ksft_test_result(opt(dgram, PACKET_FANOUT) == FANOUT_ID && opt(raw, PACKET_FANOUT) == 0,
			 "fanout group %#x kept, none made (%#x)", opt(dgram, PACKET_FANOUT), opt(raw, PACKET_FANOUT));
	/* lo is all-multicast while the membership added twice holds. */
	flags[0] = ifflags();
	membership(dgram, PACKET_DROP_MEMBERSHIP, lo, PACKET_MR_ALLMULTI, NULL, 0);
	flags[1] = ifflags();
	membership(dgram, PACKET_DROP_MEMBERSHIP, lo, PACKET_MR_ALLMULTI, NULL, 0);
	flags[2] = ifflags();
	ksft_test_result(flags[0] & flags[1] & IFF_ALLMULTI && !(flags[2] & IFF_ALLMULTI),
			 "the all-multicast membership added twice holds lo until dropped twice (flags %#x %#x %#x)",
			 flags[0], flags[1], flags[2]);
	/* A unicast address lo cannot filter makes it promiscuous too. */
	membership(dgram, PACKET_DROP_MEMBERSHIP, lo, PACKET_MR_UNICAST, mac, 6);
	flags[1] = ifflags();
	membership(raw, PACKET_DROP_MEMBERSHIP, lo, PACKET_MR_PROMISC, NULL, 0);
	flags[2] = ifflags();
	ksft_test_result(flags[1] & IFF_PROMISC && !(flags[2] & IFF_PROMISC) && opt(raw, PACKET_ORIGDEV) == 1,
			 "raw socket: promiscuous membership holds lo until dropped (flags %#x, dropped %#x), origdev kept",
			 flags[1], flags[2]);
	len = sizeof(got);
	memset(&got, 0xff, sizeof(got));
	getsockname(raw, (struct sockaddr *)&got, &len);
	ksft_test_result(got.sll_ifindex == 0 && got.sll_protocol == 0,
			 "raw socket unbound, protocol 0 (index %d, protocol %#x)", got.sll_ifindex, got.sll_protocol);
	len = sizeof(gotsp);
	memset(&gotsp, 0, sizeof(gotsp));
	getsockname(spkt, &gotsp, &len);
	ksft_test_result(!strcmp(gotsp.sa_data, "lo"), "SOCK_PACKET socket bound to \"%.14s\"", gotsp.sa_data);

	/* The ring, where it was mapped, takes the frames of the socket. */
	ksft_test_result(mapped(ring, dgram), "the ring is mapped at %p, on the socket", ring);
	for (int try = 0; try < 50 && !received; try++) {
		if (sendto(udp, "crsub-ring", 10, 0, (struct sockaddr *)&to, sizeof(to)) != 10)
			break;
		pfd = (struct pollfd){ .fd = dgram, .events = POLLIN };
		poll(&pfd, 1, 100);
		received = ring_has(ring, "crsub-ring");
	}
	ksft_test_result(received, "a datagram sent to 127.0.0.1 lands in the mapped RX ring");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * tun_devices: a process in a network namespace of its own holds
 * /dev/net/tun descriptions: one not attached, one attached to tun device
 * crtun0, two to multi-queue tap device crtap1 (the second's queue
 * detached), whose hardware address and MTU it set and which it brought up;
 * persistent device crtun2 has no description (zdtm tun_ns). After the
 * restart it checks from inside that each description is attached as it
 * was, that the devices have their indexes, address, MTU and state, that
 * crtun2 is still persistent and crtun0 is not (it goes with its last
 * description), and that a packet written to crtun0's description reaches
 * the namespace.
 */
#define _GNU_SOURCE
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "cr.h"
#include "netif.h"

static int open_tun(const char *name, int flags)
{
	struct ifreq ifr = { .ifr_flags = flags };
	int fd = open("/dev/net/tun", O_RDWR);

	if (fd < 0 || !name)
		return fd;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* attached says whether fd is attached to device name with flags. */
static int attached(int fd, const char *name, int flags)
{
	struct ifreq ifr = { 0 };

	return !ioctl(fd, TUNGETIFF, &ifr) && !strcmp(ifr.ifr_name, name) && (ifr.ifr_flags & flags) == flags;
}

static const char mac[6] = { 0x02, 0xc5, 0x00, 0x00, 0x00, 0x07 };

int main(void)
{
	int loose, tun0, tap1a, tap1b, tun2, s, mtu = 0, idx0, idx1, idx2;
	struct ifreq ifr = { 0 };

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);
	if (access("/dev/net/tun", R_OK | W_OK))
		ksft_exit_skip("no /dev/net/tun\n");
	if (unshare(CLONE_NEWNET))
		ksft_exit_fail_msg("setup: unshare(CLONE_NEWNET): %s", strerror(errno));
	s = socket(AF_INET, SOCK_DGRAM, 0);
	loose = open_tun(NULL, 0);
	tun0 = open_tun("crtun0", IFF_TUN | IFF_NO_PI);
	tap1a = open_tun("crtap1", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
	tap1b = open_tun("crtap1", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
	tun2 = open_tun("crtun2", IFF_TUN);
	if (s < 0 || loose < 0 || tun0 < 0 || tap1a < 0 || tap1b < 0 || tun2 < 0)
		ksft_exit_fail_msg("setup: tun devices: %s", strerror(errno));
	ifr.ifr_flags = IFF_DETACH_QUEUE;
	if (ioctl(tap1b, TUNSETQUEUE, &ifr) || ioctl(tun2, TUNSETPERSIST, 1) || close(tun2))
		ksft_exit_fail_msg("setup: detach, persist: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "crtap1");
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (ioctl(s, SIOCSIFHWADDR, &ifr))
		ksft_exit_fail_msg("setup: hardware address: %s", strerror(errno));
	ifr.ifr_mtu = 1400;
	if (ioctl(s, SIOCSIFMTU, &ifr) || ioctl(s, SIOCGIFFLAGS, &ifr))
		ksft_exit_fail_msg("setup: MTU: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		ksft_exit_fail_msg("setup: up: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "crtun0");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) || (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr)))
		ksft_exit_fail_msg("setup: crtun0 up: %s", strerror(errno));
	idx0 = if_nametoindex("crtun0");
	idx1 = if_nametoindex("crtap1");
	idx2 = if_nametoindex("crtun2");
	ksft_print_msg("setup ok: crtun0 %d, crtap1 %d, crtun2 %d", idx0, idx1, idx2);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(!attached(loose, "", 0) && (memset(&ifr, 0, sizeof(ifr)), ioctl(loose, TUNGETIFF, &ifr) < 0 && errno == EBADFD),
			 "the description not attached is still not");
	ksft_test_result(attached(tun0, "crtun0", IFF_TUN | IFF_NO_PI) && attached(tap1a, "crtap1", IFF_TAP | IFF_MULTI_QUEUE) &&
			 attached(tap1b, "crtap1", IFF_TAP | IFF_MULTI_QUEUE | IFF_DETACH_QUEUE),
			 "each description is attached to its device, the second tap queue detached");
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_ATTACH_QUEUE;
	int reattach = ioctl(tap1b, TUNSETQUEUE, &ifr);
	ifr.ifr_flags = IFF_DETACH_QUEUE;
	ksft_test_result(!reattach && !ioctl(tap1a, TUNSETQUEUE, &ifr), "the detached queue attaches again, the other detaches");
	ksft_test_result(if_nametoindex("crtun0") == (unsigned)idx0 && if_nametoindex("crtap1") == (unsigned)idx1 &&
			 if_nametoindex("crtun2") == (unsigned)idx2, "the devices keep their indexes");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "crtap1");
	int up = link_up(s, "crtap1", &mtu);
	ksft_test_result(!ioctl(s, SIOCGIFHWADDR, &ifr) && !memcmp(ifr.ifr_hwaddr.sa_data, mac, 6) && up && mtu == 1400,
			 "crtap1 keeps its hardware address, MTU (%d) and up state", mtu);
	tun2 = open_tun("crtun2", IFF_TUN | IFF_TUN_EXCL);
	int busy = tun2 < 0 && errno == EBUSY;
	tun2 = open_tun("crtun2", IFF_TUN);
	ksft_test_result(busy && tun2 >= 0 && !ioctl(tun2, TUNSETPERSIST, 0), "crtun2 is still persistent, with no description");
	/* An IPv4 packet to an address of nothing here: the namespace takes
	 * it in through crtun0 (and drops it). */
	static const unsigned char pkt[28] = { 0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 9, 9, 1, 10, 9, 9, 2, 0, 9, 0, 9, 0, 8, 0, 0 };
	ksft_test_result(write(tun0, pkt, sizeof(pkt)) == sizeof(pkt), "crtun0 takes a packet written to its description");
	close(tun0);
	ksft_test_result(if_nametoindex("crtun0") == 0, "crtun0 is not persistent: gone with its description");
	ksft_finished();
}

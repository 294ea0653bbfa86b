/* What a network subject checks of its namespace's links from inside. */
#ifndef CRSUB_NETIF_H
#define CRSUB_NETIF_H

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

/* link_up says whether link ifname is up (s: any socket of the
 * namespace), and stores its MTU in *mtu if mtu is not NULL. */
static inline int link_up(int s, const char *ifname, int *mtu)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		return 0;
	int up = !!(ifr.ifr_flags & IFF_UP);
	if (mtu && !ioctl(s, SIOCGIFMTU, &ifr))
		*mtu = ifr.ifr_mtu;
	return up;
}

/* has_addr says whether link ifname has the IPv4 address addr. */
static inline int has_addr(const char *ifname, const char *addr)
{
	struct ifaddrs *ifa, *i;
	char buf[INET6_ADDRSTRLEN];
	int found = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, ifname))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof(buf));
		found |= !strcmp(buf, addr);
	}
	freeifaddrs(ifa);
	return found;
}

#endif

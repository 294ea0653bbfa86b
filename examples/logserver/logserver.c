/* A tiny logging server for `make demo`. One epoll loop: every 200 ms of
 * quiet it appends a tick line to its log (stdout, fd 1), and it answers
 * each TCP connection on its listening socket (fd 3) with its tick and
 * connection counts. The counters live in memory only, so a restart that
 * lost its state would start again from zero.
 *
 *	logserver [PORT]	(default 0: the kernel picks a free port)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_FD 3

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev = { .events = EPOLLIN };
	socklen_t len = sizeof(sa);
	unsigned long tick = 0, conns = 0;
	int fd, ep, one = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sa.sin_port = htons(argc > 1 ? atoi(argv[1]) : 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) ||
	    (fd != LISTEN_FD && (dup2(fd, LISTEN_FD) != LISTEN_FD || close(fd))) ||
	    getsockname(LISTEN_FD, (struct sockaddr *)&sa, &len)) {
		perror("logserver: listening socket");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, LISTEN_FD, &ev)) {
		perror("logserver: epoll");
		return 1;
	}
	printf("logserver pid %d: listening on 127.0.0.1:%d (fd %d)\n", getpid(), ntohs(sa.sin_port), LISTEN_FD);

	for (;;) {
		int n = epoll_wait(ep, &ev, 1, 200), c;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("logserver: epoll_wait");
			return 1;
		}
		if (n == 0) {
			printf("logserver pid %d: tick %lu\n", getpid(), tick++);
			continue;
		}
		c = accept(LISTEN_FD, NULL, NULL);
		if (c < 0)
			continue;
		conns++;
		dprintf(c, "tick %lu, connection %lu\n", tick, conns);
		close(c);
		printf("logserver pid %d: answered connection %lu at tick %lu\n", getpid(), conns, tick);
	}
}

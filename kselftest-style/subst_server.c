// SPDX-License-Identifier: MIT
/*
 * subst_server: what crsub exists for. A server logs to a file on fd 3 and
 * to stdout, and answers on a listening TCP socket (fd 4) from an epoll
 * loop, counting connections in memory. It is checkpointed, its log is
 * rotated away, and it is restarted with --fd 3=file:(a fresh log) and
 * --fd 4=tcp-listen:127.0.0.1:0. The poke connects to the new port; the
 * server must answer there with its count going on, log to the new file
 * only, and still find its socket through the same epoll instance.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "cr.h"

#define LOG_FD 3
#define LISTEN_FD 4
#define EPOLL_DATA 0xfeedULL

static unsigned served;

static void serve_one(int epfd)
{
	struct epoll_event ev;
	char line[64];
	int n, c, len;

	n = epoll_wait(epfd, &ev, 1, 5000);
	if (n != 1 || ev.data.u64 != EPOLL_DATA)
		ksft_exit_fail_msg("epoll_wait: %d (data %#llx): %s", n, (unsigned long long)ev.data.u64, strerror(errno));
	c = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		ksft_exit_fail_msg("accept: %s", strerror(errno));
	len = snprintf(line, sizeof(line), "count %u\n", served);
	if (write(c, line, len) != len)
		ksft_exit_fail_msg("write to client: %s", strerror(errno));
	close(c);
	len = snprintf(line, sizeof(line), "served %u\n", served);
	if (write(LOG_FD, line, len) != len)
		ksft_exit_fail_msg("write to log: %s", strerror(errno));
	printf("# served %u\n", served);
	fflush(stdout);
	served++;
}

/* Put fd at number target (open may have put it there already). */
static int move_fd(int fd, int target)
{
	if (fd < 0 || fd == target)
		return fd;
	if (dup3(fd, target, 0) != target)
		return -1;
	close(fd);
	return target;
}

static int port_of(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len))
		return -1;
	return ntohs(sa.sin_port);
}

static int count_lines(const char *path, const char *prefix)
{
	char buf[256];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f))
		n += strncmp(buf, prefix, strlen(prefix)) == 0;
	fclose(f);
	return n;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EPOLL_DATA };
	struct stat before, after;
	sigset_t unblocked;
	int fd, epfd, one = 1, old_port, k;
	char buf[64];

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	fd = open(cr_path("app.log"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (move_fd(fd, LOG_FD) != LOG_FD || fcntl(LOG_FD, F_SETFD, 0) || fstat(LOG_FD, &before))
		ksft_exit_fail_msg("log: %s", strerror(errno));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) || move_fd(fd, LISTEN_FD) != LISTEN_FD)
		ksft_exit_fail_msg("listen: %s", strerror(errno));
	old_port = port_of(LISTEN_FD);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, LISTEN_FD, &ev))
		ksft_exit_fail_msg("epoll: %s", strerror(errno));

	/* Serve three connections of our own before the checkpoint. */
	sa.sin_port = htons(old_port);
	for (k = 0; k < 3; k++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)))
			ksft_exit_fail_msg("connect: %s", strerror(errno));
		serve_one(epfd);
		memset(buf, 0, sizeof(buf));
		if (read(c, buf, sizeof(buf) - 1) <= 0 || atoi(buf + 6) != k)
			ksft_exit_fail_msg("reply %d: %s", k, buf);
		close(c);
	}
	ksft_print_msg("setup ok: served %u on port %d", served, old_port);

	/* The loop the checkpoint interrupts: epoll_pwait lets SIGTERM in. */
	sigprocmask(SIG_BLOCK, NULL, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	cr_ready_in(SYS_epoll_pwait);
	while (!cr_got_sigterm) {
		struct epoll_event got;
		int n = epoll_pwait(epfd, &got, 1, -1, &unblocked);

		if (n < 0 && errno == EINTR)
			continue; /* a checkpoint's interrupt, or SIGTERM */
		if (n != 1)
			ksft_exit_fail_msg("epoll_pwait: %s", strerror(errno));
		if (got.data.u64 != EPOLL_DATA)
			ksft_exit_fail_msg("epoll data %#llx", (unsigned long long)got.data.u64);
		ev.data.u64 = got.data.u64;
		serve_one(epfd);
	}

	ksft_test_result(served == 5, "served 5 connections, counting on across the restart (%u)", served);
	ksft_test_result(port_of(LISTEN_FD) > 0 && port_of(LISTEN_FD) != old_port,
			 "fd %d listens on a new port (%d, was %d)\n", LISTEN_FD, port_of(LISTEN_FD), old_port);
	ksft_test_result(fstat(LOG_FD, &after) == 0 && after.st_ino != before.st_ino,
			 "fd %d is a new log file\n", LOG_FD);
	ksft_test_result((fcntl(LOG_FD, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND),
			 "the new log kept the image's write-only, append mode\n");
	ksft_test_result(count_lines(cr_path("app.log.1"), "served") == 3,
			 "nothing more reached the rotated log (%d lines)\n", count_lines(cr_path("app.log.1"), "served"));
	ksft_test_result(count_lines(cr_path("app.log"), "served") == 2,
			 "the new log has the lines served after restart (%d)\n", count_lines(cr_path("app.log"), "served"));
	ksft_finished();
}

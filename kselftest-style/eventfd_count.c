// SPDX-License-Identifier: MIT
/*
 * eventfd_count: eventfd counters survive checkpoint/restart with their mode
 * and flags.
 *
 *   fd 40: EFD_SEMAPHORE|EFD_NONBLOCK, count 5: reads 1 five times, then EAGAIN
 *   fd 41: plain, blocking, count 0x123456789ab (above 32 bits, which
 *          eventfd2's initval cannot take): one read returns it all
 *   fd 42: plain, EFD_NONBLOCK, count 0
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/eventfd.h>

#include "cr.h"

#define SEM	40
#define BIG	41
#define ZERO	42
#define BIGCOUNT 0x123456789abULL

/* The "eventfd-count" and "eventfd-semaphore" fields of fd's fdinfo. */
static int fdinfo(int fd, unsigned long long *count, int *sem)
{
	char path[64], line[256];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	*sem = -1;
	while (fgets(line, sizeof(line), f)) {
		n += sscanf(line, "eventfd-count: %llx", count) == 1;
		n += sscanf(line, "eventfd-semaphore: %d", sem) == 1;
	}
	fclose(f);
	return n >= 1 ? 0 : -1;
}

static int is_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void make(int fd, unsigned int init, int flags)
{
	int e = eventfd(init, flags);

	if (e < 0)
		ksft_exit_fail_msg("eventfd: %s", strerror(errno));
	if (dup2(e, fd) != fd)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(e);
}

int main(void)
{
	unsigned long long c, cnt[3] = { 0 };
	int fl[3], sem[3], i, ones, ok;
	const int fds[3] = { SEM, BIG, ZERO };
	uint64_t v;

	cr_init();
	ksft_print_header();
	ksft_set_plan(9);

	make(SEM, 5, EFD_SEMAPHORE | EFD_NONBLOCK);
	make(BIG, 0, 0);
	make(ZERO, 0, EFD_NONBLOCK);
	v = BIGCOUNT;
	cr_write_all(BIG, &v, sizeof(v), "eventfd");
	for (i = 0; i < 3; i++) {
		fl[i] = fcntl(fds[i], F_GETFL);
		if (fdinfo(fds[i], &cnt[i], &sem[i]))
			ksft_exit_fail_msg("setup: fdinfo of fd %d", fds[i]);
	}
	if (cnt[0] != 5 || cnt[1] != BIGCOUNT || cnt[2] != 0 || sem[0] != 1 || sem[1] != 0)
		ksft_exit_fail_msg("setup: counts %llx %llx %llx, semaphore %d %d", cnt[0], cnt[1], cnt[2], sem[0], sem[1]);
	ksft_print_msg("setup ok: counts 5, %#llx, 0", BIGCOUNT);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(is_eventfd(SEM) && is_eventfd(BIG) && is_eventfd(ZERO), "fds 40-42 are eventfds");
	for (i = 0; i < 3; i++)
		if (fcntl(fds[i], F_GETFL) != fl[i])
			break;
	ksft_test_result(i == 3, "status flags %#x %#x %#x == %#x %#x %#x", fcntl(SEM, F_GETFL), fcntl(BIG, F_GETFL),
			 fcntl(ZERO, F_GETFL), fl[0], fl[1], fl[2]);
	{
		unsigned long long now[3] = { 0 };
		int s[3] = { -1, -1, -1 };

		for (i = 0; i < 3; i++)
			fdinfo(fds[i], &now[i], &s[i]);
		ksft_test_result(now[0] == 5 && now[1] == BIGCOUNT && now[2] == 0 && s[0] == 1 && s[1] == 0 && s[2] == 0,
				 "fdinfo: counts %#llx %#llx %#llx, semaphore %d %d %d", now[0], now[1], now[2], s[0], s[1], s[2]);
	}
	for (ones = 0; ones < 10; ones++) {
		if (read(SEM, &v, sizeof(v)) != sizeof(v))
			break;
		if (v != 1)
			break;
	}
	ksft_test_result(ones == 5, "semaphore: read 1 %d times (want 5)", ones);
	ok = read(SEM, &v, sizeof(v)) < 0 && errno == EAGAIN;
	ksft_test_result(ok, "semaphore then empty: EAGAIN");
	c = 0;
	ok = readable(BIG) && read(BIG, &c, sizeof(c)) == sizeof(c) && c == BIGCOUNT;
	ksft_test_result(ok, "large count read whole: %#llx == %#llx", c, BIGCOUNT);
	ksft_test_result(!readable(BIG), "large counter empty after one read");
	ok = read(ZERO, &v, sizeof(v)) < 0 && errno == EAGAIN;
	ksft_test_result(ok, "zero counter: EAGAIN");
	v = 3;
	c = 0;
	ok = write(ZERO, &v, sizeof(v)) == sizeof(v) && write(ZERO, &v, sizeof(v)) == sizeof(v) &&
	     read(ZERO, &c, sizeof(c)) == sizeof(c) && c == 6;
	ksft_test_result(ok, "writes still add up: %llu == 6", c);
	ksft_finished();
}

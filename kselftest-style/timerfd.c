// SPDX-License-Identifier: MIT
/*
 * timerfd: timerfds survive checkpoint/restart with their clock, flags,
 * setting and unread expirations.
 *
 *   fd 40: CLOCK_MONOTONIC, TFD_NONBLOCK, relative, every 100 ms: keeps
 *          firing at that rate
 *   fd 41: CLOCK_MONOTONIC, TFD_TIMER_ABSTIME one-shot DEADLINE_S after
 *          setup: fires at that deadline, not later (a checkpoint must not
 *          shift an absolute timer by the time it took)
 *   fd 42: CLOCK_BOOTTIME, relative one-shot of 1 ms, expired and not
 *          read: still reads 1 expiration
 *   fd 43: CLOCK_REALTIME, TFD_TIMER_ABSTIME every hour from 3 h ago:
 *          4 expirations not read (fdinfo shows 1 until someone brings the
 *          timer up to date), next one in about an hour
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "cr.h"

#define PERIODIC	40
#define ABS		41
#define EXPIRED		42
#define OVERRUN		43
#define INTERVAL_NS	100000000LL
#define DEADLINE_S	3
#define HOUR_NS		(3600LL * 1000000000LL)

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ns(&t);
}

static struct timespec ts(long long v) { return (struct timespec){ v / 1000000000LL, v % 1000000000LL }; }

static void make(int fd, int clock, int flags, int sflags, long long value, long long interval)
{
	struct itimerspec it = { ts(interval), ts(value) };
	int t = timerfd_create(clock, flags);

	if (t < 0)
		ksft_exit_fail_msg("timerfd_create(%d): %s", clock, strerror(errno));
	if (dup2(t, fd) != fd)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(t);
	if (timerfd_settime(fd, sflags, &it, NULL))
		ksft_exit_fail_msg("timerfd_settime: %s", strerror(errno));
}

/* An integer field ("clockid", "settime flags" (octal)) of fd's fdinfo, or -1. */
static long fdinfo_field(int fd, const char *key, int base)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, base);
	fclose(f);
	return v;
}

static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Expirations of fd, without blocking (0 if none). */
static unsigned long long expirations(int fd)
{
	uint64_t n = 0;

	if (!readable(fd, 0) || read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static long long remaining(int fd, long long *interval)
{
	struct itimerspec it;

	if (timerfd_gettime(fd, &it))
		return -1;
	if (interval)
		*interval = ns(&it.it_interval);
	return ns(&it.it_value);
}

int main(void)
{
	long long deadline, left, ival, t0, took, fired;
	unsigned long long n, total;
	int fl[4], i;
	const int fds[4] = { PERIODIC, ABS, EXPIRED, OVERRUN };
	struct timespec mono, real;

	cr_init();
	ksft_print_header();
	ksft_set_plan(12);

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	deadline = ns(&mono) + DEADLINE_S * 1000000000LL;
	make(PERIODIC, CLOCK_MONOTONIC, TFD_NONBLOCK, 0, INTERVAL_NS, INTERVAL_NS);
	make(ABS, CLOCK_MONOTONIC, 0, TFD_TIMER_ABSTIME, deadline, 0);
	make(EXPIRED, CLOCK_BOOTTIME, 0, 0, 1000000, 0);
	make(OVERRUN, CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME, ns(&real) - 3 * HOUR_NS - 1000000, HOUR_NS);
	for (i = 0; i < 4; i++)
		fl[i] = fcntl(fds[i], F_GETFL);
	usleep(20000);
	if (!readable(EXPIRED, 0) || !readable(OVERRUN, 0) || readable(ABS, 0))
		ksft_exit_fail_msg("setup: expired %d, overrun %d, absolute %d readable", readable(EXPIRED, 0),
				   readable(OVERRUN, 0), readable(ABS, 0));
	ksft_print_msg("setup ok: absolute deadline in %d s", DEADLINE_S);

	cr_ready();
	cr_wait_sigterm();

	for (i = 0; i < 4; i++)
		if (fcntl(fds[i], F_GETFL) != fl[i])
			break;
	ksft_test_result(i == 4, "status flags %#x %#x %#x %#x", fcntl(PERIODIC, F_GETFL), fcntl(ABS, F_GETFL),
			 fcntl(EXPIRED, F_GETFL), fcntl(OVERRUN, F_GETFL));
	ksft_test_result(fdinfo_field(PERIODIC, "clockid", 10) == CLOCK_MONOTONIC &&
			 fdinfo_field(EXPIRED, "clockid", 10) == CLOCK_BOOTTIME &&
			 fdinfo_field(OVERRUN, "clockid", 10) == CLOCK_REALTIME &&
			 fdinfo_field(ABS, "settime flags", 8) == TFD_TIMER_ABSTIME &&
			 fdinfo_field(PERIODIC, "settime flags", 8) == 0,
			 "clocks %ld %ld %ld, settime flags %lo %lo", fdinfo_field(PERIODIC, "clockid", 10),
			 fdinfo_field(EXPIRED, "clockid", 10), fdinfo_field(OVERRUN, "clockid", 10), fdinfo_field(ABS, "settime flags", 8),
			 fdinfo_field(PERIODIC, "settime flags", 8));

	/* fd 42: expired one-shot */
	n = expirations(EXPIRED);
	ksft_test_result(n == 1, "expired one-shot reads %llu expiration (want 1)", n);
	left = remaining(EXPIRED, &ival);
	ksft_test_result(left == 0 && ival == 0, "expired one-shot is disarmed (%lld ns left)", left);

	/* fd 43: four unread expirations, next in an hour */
	n = expirations(OVERRUN);
	ksft_test_result(n == 4, "overrun periodic reads %llu expirations (want 4)", n);
	left = remaining(OVERRUN, &ival);
	ksft_test_result(ival == HOUR_NS && left > HOUR_NS - 600 * 1000000000LL && left <= HOUR_NS,
			 "hourly timer: interval %lld ns, next in %lld s", ival, left / 1000000000LL);

	/* fd 40: periodic */
	left = remaining(PERIODIC, &ival);
	ksft_test_result(ival == INTERVAL_NS && left > 0 && left <= INTERVAL_NS,
			 "periodic: interval %lld ns, next in %lld ns", ival, left);
	n = expirations(PERIODIC);
	ksft_print_msg("periodic: %llu expirations since the checkpoint's last read", n);
	t0 = now_ns();
	for (total = 0; total < 5 && now_ns() - t0 < 3000000000LL;) {
		uint64_t v = 0;

		if (readable(PERIODIC, 1000) && read(PERIODIC, &v, sizeof(v)) == sizeof(v))
			total += v;
	}
	took = now_ns() - t0;
	ksft_test_result(total >= 5 && took >= 380000000LL && took <= 700000000LL,
			 "periodic keeps firing: %llu expirations in %lld ms", total, took / 1000000);
	errno = 0;
	ksft_test_result(read(PERIODIC, &n, sizeof(n)) < 0 && errno == EAGAIN, "periodic is still O_NONBLOCK");

	/* fd 41: absolute deadline */
	left = remaining(ABS, &ival);
	if (now_ns() + 50000000LL < deadline) {
		long long want = deadline - now_ns();

		ksft_test_result(llabs(left - want) < 20000000LL, "absolute: %lld ms left, deadline in %lld ms",
				 left / 1000000, want / 1000000);
		readable(ABS, (int)((deadline - now_ns()) / 1000000) + 2000);
		fired = now_ns();
		n = expirations(ABS);
		ksft_test_result(n == 1 && fired >= deadline && fired - deadline < 100000000LL,
				 "absolute fires at its deadline: %llu expiration, %lld ms after it", n,
				 (fired - deadline) / 1000000);
	} else {
		ksft_test_result_skip("absolute: the deadline passed before the restart was verified");
		n = expirations(ABS);
		ksft_test_result(n == 1 && left == 0, "absolute fired: %llu expiration, %lld ns left", n, left);
	}
	left = remaining(ABS, &ival);
	ksft_test_result(left == 0 && ival == 0, "absolute one-shot disarmed after firing (%lld ns left)", left);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * ns_container: a process that made UTS, cgroup, pid and time namespaces
 * (unshare) and forked the init of the last two, checkpointed from the
 * host. The init checks from inside, before and after: it is pid 1, the
 * hostname and domain name are its namespace's, its cgroup is its
 * namespace's root, its clocks run 1000 s (monotonic) and 2000 s (boot
 * time) ahead of the parent's. The parent reports what the init found.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include "cr.h"

#define HOSTNAME "crsub-ctr"
#define DOMAIN "crsub.test"
#define MONO_OFFSET 1000
#define BOOT_OFFSET 2000

enum { PID1 = 1, UTS = 2, CGROUP = 4, OFFSETS = 8, MONO = 16, BOOT = 32, PPID0 = 64 };

static long long now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec;
}

/* What the init finds in its namespaces; clocks against the parent's. */
static int inspect(long long mono, long long boot)
{
	struct utsname u;
	char buf[512] = "";
	int fd, found = 0;
	ssize_t n;

	if (getpid() == 1)
		found |= PID1;
	if (getppid() == 0)
		found |= PPID0;
	if (uname(&u) == 0 && !strcmp(u.nodename, HOSTNAME) && !strcmp(u.domainname, DOMAIN))
		found |= UTS;
	if ((fd = open("/proc/self/cgroup", O_RDONLY)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		/* Every hierarchy's line ends in ":/": the namespace's root. */
		int all = n > 0;
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
			all &= strlen(l) >= 2 && !strcmp(l + strlen(l) - 2, ":/");
		if (all)
			found |= CGROUP;
	}
	if ((fd = open("/proc/self/timens_offsets", O_RDONLY)) >= 0) {
		long long ms, mn, bs, bn;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (sscanf(buf, "monotonic %lld %lld boottime %lld %lld", &ms, &mn, &bs, &bn) == 4 &&
		    ms == MONO_OFFSET && bs == BOOT_OFFSET && mn == 0 && bn == 0)
			found |= OFFSETS;
	}
	long long dm = now(CLOCK_MONOTONIC) - mono, db = now(CLOCK_BOOTTIME) - boot;
	if (dm >= MONO_OFFSET - 5 && dm <= MONO_OFFSET + 5)
		found |= MONO;
	if (db >= BOOT_OFFSET - 5 && db <= BOOT_OFFSET + 5)
		found |= BOOT;
	return found;
}

static void send_clocks(int fd)
{
	long long c[2] = { now(CLOCK_MONOTONIC), now(CLOCK_BOOTTIME) };

	cr_write_all(fd, c, sizeof(c), "clocks");
}

static int recv_clocks(int fd, long long c[2])
{
	return read(fd, c, 2 * sizeof(long long)) == 2 * sizeof(long long);
}

int main(void)
{
	int to_init[2], from_init[2], status, before;
	pid_t init;
	char offsets[64];

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	if (unshare(CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWPID | CLONE_NEWTIME) < 0) {
		ksft_print_msg("unshare: %s\n", strerror(errno));
		return 4; /* skip: no namespaces here */
	}
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0 || setdomainname(DOMAIN, strlen(DOMAIN)) < 0)
		ksft_exit_fail_msg("setup: hostname: %s", strerror(errno));
	snprintf(offsets, sizeof(offsets), "monotonic %d 0\nboottime %d 0\n", MONO_OFFSET, BOOT_OFFSET);
	int fd = open("/proc/self/timens_offsets", O_WRONLY);
	if (fd < 0 || write(fd, offsets, strlen(offsets)) != (ssize_t)strlen(offsets))
		ksft_exit_fail_msg("setup: timens_offsets: %s", strerror(errno));
	close(fd);
	if (pipe(to_init) < 0 || pipe(from_init) < 0)
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	init = fork();
	if (init < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (init == 0) {
		long long c[2];
		int found;

		setsid();
		close(to_init[1]);
		close(from_init[0]);
		/* Before: the parent's clocks now, and what it finds. */
		if (!recv_clocks(to_init[0], c))
			_exit(128);
		found = inspect(c[0], c[1]);
		cr_write_all(from_init[1], &found, sizeof(found), "found");
		/* After the restart: the parent's clocks then. */
		if (!recv_clocks(to_init[0], c))
			_exit(129);
		_exit(inspect(c[0], c[1]));
	}
	close(to_init[0]);
	close(from_init[1]);
	send_clocks(to_init[1]);
	if (read(from_init[0], &before, sizeof(before)) != sizeof(before))
		ksft_exit_fail_msg("setup: the init reports nothing");
	if (before != (PID1 | PPID0 | UTS | CGROUP | OFFSETS | MONO | BOOT))
		ksft_exit_fail_msg("setup: the init finds %#x before the checkpoint", before);
	ksft_print_msg("setup ok: init %d\n", init);

	cr_ready();
	cr_wait_sigterm();

	send_clocks(to_init[1]);
	if (waitpid(init, &status, 0) != init || !WIFEXITED(status))
		ksft_exit_fail_msg("the init did not exit (status %#x)", status);
	int found = WEXITSTATUS(status);
	ksft_test_result(found & PID1, "the init is pid 1 in its namespace");
	ksft_test_result(found & PPID0, "its parent is outside its pid namespace");
	ksft_test_result(found & UTS, "hostname and domain name are its namespace's");
	ksft_test_result(found & CGROUP, "its cgroups are its namespace's root");
	ksft_test_result(found & OFFSETS, "its time namespace's offsets are as set");
	ksft_test_result(found & MONO, "its monotonic clock runs %d s ahead", MONO_OFFSET);
	ksft_test_result(found & BOOT, "its boot-time clock runs %d s ahead", BOOT_OFFSET);
	ksft_finished();
}

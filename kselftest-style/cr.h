/* SPDX-License-Identifier: MIT */
/*
 * cr.h - the checkpoint/restart subject protocol (see README.md).
 *
 * A subject:
 *   1. calls cr_init() early (installs the SIGTERM handler, blocks SIGTERM),
 *      prints its TAP header and plan, sets up the state under test and
 *      verifies it (ksft_exit_fail_msg / ksft_exit_skip on trouble: never
 *      hang);
 *   2. calls cr_ready() (or cr_ready_in(SYS_xxx) when it then blocks in a
 *      syscall of its own): $CR_DIR/ready appears atomically, holding the
 *      number of the syscall the subject is about to block in, so the runner
 *      checkpoints it exactly there (it waits for /proc/PID/syscall);
 *   3. waits: cr_wait_sigterm() (sigsuspend: no timers, no fds, no memory
 *      changes), or its own blocking call followed by cr_wait_sigterm();
 *   4. after SIGTERM, verifies the state and prints the results; exits with
 *      ksft_finished() (0 only if every check passed).
 *
 * SIGTERM stays blocked except inside cr_wait_sigterm(), so the runner's
 * SIGTERM never interrupts a blocking call under test (read, nanosleep...):
 * it stays pending until the subject asks for it.
 */
#ifndef CRSUB_CR_H
#define CRSUB_CR_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest.h"

static volatile sig_atomic_t cr_got_sigterm;
static int cr_initialized;

static void cr_sigterm_handler(int sig)
{
	(void)sig;
	cr_got_sigterm = 1;
}

static inline const char *cr_dir(void)
{
	const char *d = getenv("CR_DIR");

	if (!d || !*d)
		ksft_exit_fail_msg("CR_DIR is not set (run me through run.sh)");
	return d;
}

/* "$CR_DIR/name" in a static ring of buffers (a few live at once). */
static inline const char *cr_path(const char *name)
{
	static char buf[4][4096];
	static int i;
	char *p = buf[i++ & 3];

	if ((size_t)snprintf(p, sizeof(buf[0]), "%s/%s", cr_dir(), name) >= sizeof(buf[0]))
		ksft_exit_fail_msg("path too long: %s/%s", cr_dir(), name);
	return p;
}

static inline void cr_init(void)
{
	struct sigaction sa;
	sigset_t set;

	if (cr_initialized)
		return;
	/* A restored subject never gets here again: catch re-execution. */
	if (access(cr_path("ready"), F_OK) == 0)
		ksft_exit_fail_msg("%s exists already: subject started twice?", cr_path("ready"));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cr_sigterm_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		ksft_exit_fail_msg("sigaction(SIGTERM): %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		ksft_exit_fail_msg("sigprocmask: %s", strerror(errno));
	cr_initialized = 1;
}

/* Write all of buf to fd, or bail out. */
static inline void cr_write_all(int fd, const void *buf, size_t len, const char *what)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ksft_exit_fail_msg("write %s: %s", what, n ? strerror(errno) : "short");
		p += n;
		len -= n;
	}
}

/*
 * Signal readiness: the subject is about to block in syscall `sysno`
 * (-1: unspecified, the runner then only waits for state S).
 */
static inline void cr_ready_in(long sysno)
{
	char tmp[4096], fin[4096], line[32];
	int fd, len;

	cr_init();
	snprintf(tmp, sizeof(tmp), "%s", cr_path("ready.tmp"));
	snprintf(fin, sizeof(fin), "%s", cr_path("ready"));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		ksft_exit_fail_msg("open %s: %s", tmp, strerror(errno));
	len = sysno >= 0 ? snprintf(line, sizeof(line), "%ld\n", sysno) : 0;
	cr_write_all(fd, line, len, tmp);
	if (close(fd))
		ksft_exit_fail_msg("close %s: %s", tmp, strerror(errno));
	if (rename(tmp, fin))
		ksft_exit_fail_msg("rename %s: %s", fin, strerror(errno));
}

static inline void cr_ready(void)
{
	cr_ready_in(SYS_rt_sigsuspend);
}

/* Wait for the runner's SIGTERM without touching the state under test. */
static inline void cr_wait_sigterm(void)
{
	sigset_t m;

	cr_init();
	if (sigprocmask(SIG_BLOCK, NULL, &m))
		ksft_exit_fail_msg("sigprocmask: %s", strerror(errno));
	sigdelset(&m, SIGTERM);
	while (!cr_got_sigterm)
		sigsuspend(&m);
}

/* Deterministic 64-bit pattern: splitmix64 of (seed, index). */
static inline uint64_t cr_pattern64(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + i * 0xbf58476d1ce4e5b9ULL + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void cr_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i, j;

	for (i = 0; i < len; i += 8) {
		uint64_t v = cr_pattern64(seed, i / 8);

		for (j = 0; j < 8 && i + j < len; j++)
			p[i + j] = (unsigned char)(v >> (8 * j));
	}
}

/* Offset of the first byte differing from the pattern, or -1 if none. */
static inline long cr_check(const void *buf, size_t len, uint64_t seed)
{
	const unsigned char *p = buf;
	size_t i, j;

	for (i = 0; i < len; i += 8) {
		uint64_t v = cr_pattern64(seed, i / 8);

		for (j = 0; j < 8 && i + j < len; j++)
			if (p[i + j] != (unsigned char)(v >> (8 * j)))
				return (long)(i + j);
	}
	return -1;
}

/*
 * The credential lines (Uid..CapAmb) of status file path, /proc/self/status
 * or a thread's /proc/self/task/TID/status, one after another in out.
 */
static inline void cr_cred_lines(const char *path, char *out, size_t n)
{
	static const char *keys[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:" };
	char line[512];
	FILE *f = fopen(path, "r");

	out[0] = 0;
	while (f && fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strncmp(line, keys[i], strlen(keys[i])) && strlen(out) + strlen(line) < n)
				strcat(out, line);
	if (f)
		fclose(f);
}

#endif /* CRSUB_CR_H */

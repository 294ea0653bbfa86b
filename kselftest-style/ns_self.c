// SPDX-License-Identifier: MIT
/*
 * ns_self: fds on the process's own namespaces (/proc/self/ns/TYPE) stay
 * fds on its namespaces of those types, usable with setns.
 */
#define _GNU_SOURCE
#include <sched.h>
#include "cr.h"

static const char *types[] = { "net", "uts", "ipc", "mnt" };
#define N (sizeof(types) / sizeof(types[0]))

static int same_ns(int fd, const char *type)
{
	char a[64] = "", b[64] = "", path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (readlink(path, a, sizeof(a) - 1) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/ns/%s", type);
	if (readlink(path, b, sizeof(b) - 1) < 0)
		return 0;
	return !strcmp(a, b);
}

int main(void)
{
	int fds[N];

	cr_init();
	ksft_print_header();
	ksft_set_plan(N + 1);
	for (size_t i = 0; i < N; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			ksft_exit_fail_msg("setup: open %s: %s", path, strerror(errno));
	}
	ksft_print_msg("setup ok\n");

	cr_ready();
	cr_wait_sigterm();

	for (size_t i = 0; i < N; i++)
		ksft_test_result(same_ns(fds[i], types[i]), "fd %d is on the process's %s namespace", fds[i], types[i]);
	ksft_test_result(setns(fds[0], CLONE_NEWNET) == 0, "setns into it works (%s)", strerror(errno));
	ksft_finished();
}

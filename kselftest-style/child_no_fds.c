// SPDX-License-Identifier: MIT
/*
 * child_no_fds: a child that closed every fd (the last process of the
 * image, its memory the image's last records) comes back with no fd at
 * all: nothing the restart opened to rebuild it is left behind.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "cr.h"

static int count_fds(pid_t pid, char *first, size_t len)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	first[0] = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (!n++) {
			char l[512];
			ssize_t k;

			snprintf(l, sizeof(l), "%s/%s", path, de->d_name);
			k = readlink(l, first, len - 1);
			first[k > 0 ? k : 0] = 0;
		}
	}
	closedir(d);
	return n;
}

int main(void)
{
	int p[2], n;
	char first[4096];
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(1);
	if (pipe(p))
		ksft_exit_fail_msg("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	if (child == 0) {
		sigset_t none;

		for (int fd = 0; fd < 1024; fd++)
			if (fd != p[1])
				close(fd);
		close(p[1]); /* the parent's read returns: every fd is closed */
		sigemptyset(&none);
		for (;;)
			sigsuspend(&none);
	}
	close(p[1]);
	if (read(p[0], &n, 1) != 0)
		ksft_exit_fail_msg("waiting for the child");
	close(p[0]);
	if (count_fds(child, first, sizeof(first)) != 0)
		ksft_exit_fail_msg("setup: the child still has fds");

	cr_ready();
	cr_wait_sigterm();

	n = count_fds(child, first, sizeof(first));
	ksft_test_result(n == 0, "the child has %d fds (first: %s)", n, first);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ksft_finished();
}

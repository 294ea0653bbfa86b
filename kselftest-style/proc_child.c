// SPDX-License-Identifier: MIT
/*
 * proc_child: fds on /proc/CHILD of a child in the tree (zdtm
 * child_opened_proc) are opened again once the child exists:
 *
 *   fd 40: /proc/CHILD/stat, read to offset 3
 *   fd 41: /proc/CHILD, a directory
 *
 * After restart fd 40 still reads the child's stat from offset 3, and fd 41
 * reaches the child's status.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cr.h"

#define STAT	40
#define DIR	41

/* The pid /proc/PID/stat's first field names, read from fd at offset 0. */
static int stat_pid(int fd)
{
	char buf[64] = "";

	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
		return -1;
	return atoi(buf);
}

int main(void)
{
	char path[64], buf[8];
	pid_t child;
	int fd, status;
	off_t off;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	child = fork();
	if (child < 0)
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	if (child == 0) {
		for (;;)
			pause();
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", child);
	fd = open(path, O_RDONLY);
	if (fd < 0 || dup2(fd, STAT) != STAT)
		ksft_exit_fail_msg("open %s: %s", path, strerror(errno));
	close(fd);
	if (read(STAT, buf, 3) != 3)
		ksft_exit_fail_msg("read %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "/proc/%d", child);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || dup2(fd, DIR) != DIR)
		ksft_exit_fail_msg("open %s: %s", path, strerror(errno));
	close(fd);
	if (stat_pid(STAT) != child)
		ksft_exit_fail_msg("setup: stat names %d", stat_pid(STAT));
	ksft_print_msg("setup ok: child %d", child);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(stat_pid(STAT) == child, "fd %d reads the child's stat (pid %d)", STAT, stat_pid(STAT));
	off = lseek(STAT, 0, SEEK_CUR);
	ksft_test_result(off == 3, "fd %d keeps its offset: %ld", STAT, (long)off);
	fd = openat(DIR, "status", O_RDONLY | O_CLOEXEC);
	ksft_test_result(fd >= 0, "fd %d reaches the child's status", DIR);
	if (fd >= 0)
		close(fd);
	kill(child, SIGKILL);
	ksft_test_result(waitpid(child, &status, 0) == child, "the child is still ours");
	ksft_finished();
}

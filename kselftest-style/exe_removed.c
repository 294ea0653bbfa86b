// SPDX-License-Identifier: MIT
/*
 * exe_removed: a process whose executable's last name was removed while it
 * runs, as a package upgrade replaces a daemon's binary. The subject copies
 * itself to $CR_DIR/copy, runs the copy, which removes its own name. After
 * restart /proc/self/exe must still name the removed file, hold the same
 * bytes, and no file may have come back under the name.
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include "cr.h"

/* A checksum of the bytes of path, and their count. */
static uint64_t sum_of(const char *path, long *size)
{
	unsigned char buf[65536];
	uint64_t h = 1469598103934665603ULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	*size = -1;
	if (fd < 0)
		return 0;
	*size = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ULL;
		*size += n;
	}
	close(fd);
	return n < 0 ? 0 : h;
}

static void copy_and_run(char *self)
{
	char buf[65536];
	ssize_t n;
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int out = open(cr_path("copy"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);

	if (in < 0 || out < 0)
		ksft_exit_fail_msg("setup: copying the binary: %s\n", strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_write_all(out, buf, n, "copy");
	if (n < 0 || close(out))
		ksft_exit_fail_msg("setup: copying the binary: %s\n", strerror(errno));
	close(in);
	execl(cr_path("copy"), "copy", "run", (char *)NULL);
	ksft_exit_fail_msg("setup: exec %s (%s): %s\n", cr_path("copy"), self, strerror(errno));
}

int main(int argc, char **argv)
{
	char want[4096], link[4096];
	long size_before, size_after;
	uint64_t sum_before, sum_after;
	ssize_t n;

	if (argc < 2)
		copy_and_run(argv[0]);
	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	sum_before = sum_of("/proc/self/exe", &size_before);
	if (size_before <= 0 || unlink(cr_path("copy")))
		ksft_exit_fail_msg("setup: removing the running binary: %s\n", strerror(errno));
	snprintf(want, sizeof(want), "%s (deleted)", cr_path("copy"));
	n = readlink("/proc/self/exe", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, want))
		ksft_exit_fail_msg("setup: /proc/self/exe is %s, want %s\n", link, want);
	ksft_print_msg("running %s, %ld bytes\n", link, size_before);

	cr_ready();
	cr_wait_sigterm();

	n = readlink("/proc/self/exe", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	ksft_test_result(!strcmp(link, want), "/proc/self/exe names the removed file: %s\n", link);
	sum_after = sum_of("/proc/self/exe", &size_after);
	ksft_test_result(size_after == size_before && sum_after == sum_before,
			 "the executable holds the same %ld bytes (%ld after)\n", size_before, size_after);
	ksft_test_result(access(cr_path("copy"), F_OK) != 0, "no file came back under its name\n");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * nonutf8_paths: names that are bytes, not UTF-8 text, come back byte for
 * byte: a working directory "caf\xe9" (Latin-1), a file in it named
 * "\xff\xfe.log" open for writing at an offset, and the same file mapped.
 * The image's metadata is JSON: written as text, these names would come
 * back as U+FFFD and name other files.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/stat.h>

#include "cr.h"

#define DIRNAME		"caf\xe9"
#define FILENAME	"\xff\xfe.log"

int main(void)
{
	char dir[2048], cwd[4096] = "", link[4096] = "", want[4096];
	struct stat st_before, st_after;
	ssize_t n;
	char *map;
	int fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	snprintf(dir, sizeof(dir), "%s", cr_path(DIRNAME));
	if (mkdir(dir, 0755) || chdir(dir))
		ksft_exit_fail_msg("mkdir/chdir %s: %s", dir, strerror(errno));
	fd = open(FILENAME, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "0123456789", 10) != 10 || fstat(fd, &st_before))
		ksft_exit_fail_msg("open/write %s: %s", FILENAME, strerror(errno));
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s", strerror(errno));
	lseek(fd, 4, SEEK_SET);
	snprintf(want, sizeof(want), "%s/%s", dir, FILENAME);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, dir), "cwd is the Latin-1 directory byte for byte");
	snprintf(cwd, sizeof(cwd), "/proc/self/fd/%d", fd);
	n = readlink(cwd, link, sizeof(link) - 1);
	if (n >= 0)
		link[n] = 0;
	ksft_test_result(n >= 0 && !strcmp(link, want) && !fstat(fd, &st_after) &&
			 st_after.st_ino == st_before.st_ino, "the open file is the same file, by name and inode");
	ksft_test_result(lseek(fd, 0, SEEK_CUR) == 4, "its offset is kept (%ld)", (long)lseek(fd, 0, SEEK_CUR));
	ksft_test_result(!memcmp(map, "0123456789", 10), "its mapping shows its contents");
	ksft_finished();
}

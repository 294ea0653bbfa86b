// SPDX-License-Identifier: MIT
/*
 * fd_deleted: an open file whose name was unlinked keeps its content, its
 * offset and its deletedness across checkpoint/restart.
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include "cr.h"

#define FD	30
#define LEN	10000
#define OFF	5000

static unsigned char content[LEN], readback[LEN];

static int link_says_deleted(void)
{
	char link[4096];
	ssize_t n = readlink("/proc/self/fd/30", link, sizeof(link) - 1);

	if (n < 0)
		return 0;
	link[n] = 0;
	return n > 10 && !strcmp(link + n - 10, " (deleted)");
}

int main(void)
{
	struct stat st;
	int fd, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);

	cr_fill(content, LEN, 42);
	fd = open(cr_path("deleted.dat"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		ksft_exit_fail_msg("open: %s", strerror(errno));
	if (dup2(fd, FD) != FD)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(fd);
	cr_write_all(FD, content, LEN, "deleted.dat");
	if (lseek(FD, OFF, SEEK_SET) != OFF)
		ksft_exit_fail_msg("lseek: %s", strerror(errno));
	if (unlink(cr_path("deleted.dat")))
		ksft_exit_fail_msg("unlink: %s", strerror(errno));

	if (fstat(FD, &st) || st.st_nlink != 0 || st.st_size != LEN)
		ksft_exit_fail_msg("setup: fstat nlink/size wrong");
	if (!link_says_deleted() || access(cr_path("deleted.dat"), F_OK) == 0)
		ksft_exit_fail_msg("setup: file not deleted");
	if (pread(FD, readback, LEN, 0) != LEN || memcmp(readback, content, LEN))
		ksft_exit_fail_msg("setup: content wrong");

	cr_ready();
	cr_wait_sigterm();

	ok = !fstat(FD, &st);
	ksft_test_result(ok && st.st_nlink == 0 && st.st_size == LEN && link_says_deleted(),
			 "still deleted: nlink %ld size %lld", ok ? (long)st.st_nlink : -1L,
			 ok ? (long long)st.st_size : -1LL);
	ksft_test_result(access(cr_path("deleted.dat"), F_OK) < 0 && errno == ENOENT,
			 "no file reappeared under the old name");
	ksft_test_result(lseek(FD, 0, SEEK_CUR) == OFF, "offset %lld == %d",
			 (long long)lseek(FD, 0, SEEK_CUR), OFF);
	memset(readback, 0, LEN);
	ok = read(FD, readback, LEN) == LEN - OFF && !memcmp(readback, content + OFF, LEN - OFF) &&
	     pread(FD, readback, LEN, 0) == LEN && !memcmp(readback, content, LEN);
	ksft_test_result(ok, "content intact (read from offset and whole file)");
	ok = pwrite(FD, "new", 3, 10) == 3 && pread(FD, readback, 3, 10) == 3 &&
	     !memcmp(readback, "new", 3) && (fcntl(FD, F_GETFL) & O_ACCMODE) == O_RDWR;
	ksft_test_result(ok, "still open O_RDWR and writable");
	ksft_finished();
}

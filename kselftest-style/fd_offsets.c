// SPDX-License-Identifier: MIT
/*
 * fd_offsets: regular-file descriptors keep their numbers, offsets, access
 * modes, O_APPEND and FD_CLOEXEC across checkpoint/restart, and writes land
 * where they should afterwards.
 *
 *   fd 20: rw.dat, O_RDWR, offset 1234, FD_CLOEXEC
 *   fd 21: append.dat, O_WRONLY|O_APPEND, offset 110 (= size)
 *   fd 22: rw.dat, O_RDONLY, offset 4000 (a separate open file description)
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include "cr.h"

#define FD_RW	20
#define FD_APP	21
#define FD_RO	22
#define RW_LEN	8192
#define RW_OFF	1234
#define RO_OFF	4000
#define APP_LEN	110

static unsigned char rw_content[RW_LEN];

static int open_at(const char *name, int flags, int fd, off_t off)
{
	int tmp = open(cr_path(name), flags, 0644);

	if (tmp < 0)
		ksft_exit_fail_msg("open %s: %s", name, strerror(errno));
	if (dup2(tmp, fd) != fd)
		ksft_exit_fail_msg("dup2 %d: %s", fd, strerror(errno));
	close(tmp);
	if (off >= 0 && lseek(fd, off, SEEK_SET) != off)
		ksft_exit_fail_msg("lseek %s: %s", name, strerror(errno));
	return fd;
}

static off_t pos(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

static off_t size_of(const char *name)
{
	struct stat st;

	return stat(cr_path(name), &st) ? -1 : st.st_size;
}

/* State of all three fds as one comparable string. */
static void describe(char *buf, size_t len)
{
	snprintf(buf, len, "rw: off %lld fl %#x fd %#x; app: off %lld fl %#x fd %#x; ro: off %lld fl %#x fd %#x",
		 (long long)pos(FD_RW), fcntl(FD_RW, F_GETFL), fcntl(FD_RW, F_GETFD),
		 (long long)pos(FD_APP), fcntl(FD_APP, F_GETFL), fcntl(FD_APP, F_GETFD),
		 (long long)pos(FD_RO), fcntl(FD_RO, F_GETFL), fcntl(FD_RO, F_GETFD));
}

int main(void)
{
	char before[512], after[512], buf[16];
	unsigned char app[APP_LEN];
	int fd, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);

	cr_fill(rw_content, RW_LEN, 7);
	fd = open(cr_path("rw.dat"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		ksft_exit_fail_msg("create rw.dat: %s", strerror(errno));
	cr_write_all(fd, rw_content, RW_LEN, "rw.dat");
	close(fd);
	memset(app, 'a', 100);
	fd = open(cr_path("append.dat"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		ksft_exit_fail_msg("create append.dat: %s", strerror(errno));
	cr_write_all(fd, app, 100, "append.dat");
	close(fd);

	open_at("rw.dat", O_RDWR, FD_RW, RW_OFF);
	if (fcntl(FD_RW, F_SETFD, FD_CLOEXEC))
		ksft_exit_fail_msg("F_SETFD: %s", strerror(errno));
	open_at("append.dat", O_WRONLY | O_APPEND, FD_APP, -1);
	cr_write_all(FD_APP, "0123456789", 10, "append.dat");
	open_at("rw.dat", O_RDONLY, FD_RO, RO_OFF);

	/* Setup verification. */
	if (pos(FD_RW) != RW_OFF || pos(FD_APP) != APP_LEN || pos(FD_RO) != RO_OFF)
		ksft_exit_fail_msg("setup: offsets %lld %lld %lld", (long long)pos(FD_RW),
				   (long long)pos(FD_APP), (long long)pos(FD_RO));
	if ((fcntl(FD_RW, F_GETFL) & O_ACCMODE) != O_RDWR ||
	    (fcntl(FD_APP, F_GETFL) & (O_ACCMODE | O_APPEND)) != (O_WRONLY | O_APPEND) ||
	    (fcntl(FD_RO, F_GETFL) & (O_ACCMODE | O_APPEND)) != O_RDONLY)
		ksft_exit_fail_msg("setup: unexpected file status flags");
	if (fcntl(FD_RW, F_GETFD) != FD_CLOEXEC || fcntl(FD_APP, F_GETFD) != 0 ||
	    fcntl(FD_RO, F_GETFD) != 0)
		ksft_exit_fail_msg("setup: unexpected fd flags");
	if (size_of("rw.dat") != RW_LEN || size_of("append.dat") != APP_LEN)
		ksft_exit_fail_msg("setup: unexpected file sizes");
	describe(before, sizeof(before));
	ksft_print_msg("before: %s", before);

	cr_ready();
	cr_wait_sigterm();

	describe(after, sizeof(after));
	ksft_print_msg("after:  %s", after);
	ksft_test_result(!strcmp(before, after), "offsets, status flags and fd flags unchanged");
	ksft_test_result(fcntl(FD_RW, F_GETFD) == FD_CLOEXEC && fcntl(FD_APP, F_GETFD) == 0,
			 "FD_CLOEXEC set on fd %d only", FD_RW);
	ksft_test_result(size_of("rw.dat") == RW_LEN && size_of("append.dat") == APP_LEN,
			 "file sizes unchanged (%lld, %lld)", (long long)size_of("rw.dat"),
			 (long long)size_of("append.dat"));

	/* O_RDWR fd: the write lands at offset 1234 and advances it. */
	ok = write(FD_RW, "XYZ", 3) == 3 && pos(FD_RW) == RW_OFF + 3 &&
	     pread(FD_RO, buf, 3, RW_OFF) == 3 && !memcmp(buf, "XYZ", 3) &&
	     size_of("rw.dat") == RW_LEN;
	ksft_test_result(ok, "write on O_RDWR fd lands at offset %d", RW_OFF);

	/* O_RDONLY fd: reads continue at offset 4000. */
	ok = read(FD_RO, buf, 8) == 8 && !memcmp(buf, rw_content + RO_OFF, 8) &&
	     pos(FD_RO) == RO_OFF + 8;
	ksft_test_result(ok, "read on O_RDONLY fd continues at offset %d", RO_OFF);
	ksft_test_result(write(FD_RO, "x", 1) < 0 && errno == EBADF, "O_RDONLY fd refuses writes");

	/* O_APPEND fd: even after seeking to 0 the write goes to the end. */
	ok = lseek(FD_APP, 0, SEEK_SET) == 0 && write(FD_APP, "tail", 4) == 4 &&
	     pos(FD_APP) == APP_LEN + 4 && size_of("append.dat") == APP_LEN + 4;
	fd = open(cr_path("append.dat"), O_RDONLY);
	ok = ok && fd >= 0 && pread(fd, buf, 14, 100) == 14 && !memcmp(buf, "0123456789tail", 14);
	if (fd >= 0)
		close(fd);
	ksft_test_result(ok, "O_APPEND write lands at the end of the file");

	/* The two descriptions of rw.dat stay independent. */
	ksft_test_result(pos(FD_RW) == RW_OFF + 3 && pos(FD_RO) == RO_OFF + 8,
			 "fds %d and %d keep separate offsets", FD_RW, FD_RO);
	ksft_finished();
}

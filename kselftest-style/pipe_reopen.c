// SPDX-License-Identifier: MIT
/*
 * pipe_reopen: a pipe whose ends were opened again through /proc/self/fd,
 * each a second open file description of the same pipe (fd 52: read end,
 * non-blocking; fd 53: write end). After restart the four fds are on one
 * pipe, fd 52 and fd 50 are distinct descriptions (status flags of their
 * own), and bytes written through either write end are read through either
 * read end.
 *
 *   fd 50: read end, fd 51: write end (pipe(2))
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include "cr.h"

static int reopen(int fd, int flags, int at)
{
	char path[64];
	int n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = open(path, flags);
	if (n < 0 || dup2(n, at) != at)
		ksft_exit_fail_msg("reopen %s: %s", path, strerror(errno));
	close(n);
	return at;
}

static unsigned long ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (unsigned long)st.st_ino;
}

int main(void)
{
	int p[2];
	char buf[8] = "";

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	if (pipe(p) || dup2(p[0], 50) != 50 || dup2(p[1], 51) != 51)
		ksft_exit_fail_msg("pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	reopen(50, O_RDONLY | O_NONBLOCK, 52);
	reopen(51, O_WRONLY, 53);
	if (write(53, "ab", 2) != 2)
		ksft_exit_fail_msg("setup: write through the second write end: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(ino(50) && ino(50) == ino(51) && ino(50) == ino(52) && ino(50) == ino(53),
			 "the four fds are on one pipe");
	ksft_test_result((fcntl(52, F_GETFL) & O_NONBLOCK) && !(fcntl(50, F_GETFL) & O_NONBLOCK),
			 "fd 52 is a description of its own (non-blocking, fd 50 blocking)");
	ksft_test_result(read(52, buf, 1) == 1 && buf[0] == 'a' && read(50, buf, 1) == 1 && buf[0] == 'b',
			 "the bytes queued before the checkpoint are read through both read ends");
	ksft_test_result(write(51, "c", 1) == 1 && write(53, "d", 1) == 1 && read(52, buf, 2) == 2 && !memcmp(buf, "cd", 2) &&
				 read(52, buf, 1) < 0 && errno == EAGAIN,
			 "both write ends feed the pipe; the non-blocking end says EAGAIN when empty");
	ksft_finished();
}

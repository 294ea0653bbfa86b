// SPDX-License-Identifier: MIT
/*
 * pipe_buffered: a pipe (both ends in the subject) resized to 1 MiB with
 * 100 KiB buffered: after restart exactly those bytes read back, the pipe
 * size and the read end's O_NONBLOCK are preserved, the ends still connect.
 * A second pipe of 1 MiB is full, as a producer's whose reader lags (zdtm
 * pipe03): all of it is there again.
 *
 *   fd 40: read end (O_NONBLOCK), fd 41: write end
 *   fd 42, 43: the full pipe's read and write ends (O_NONBLOCK)
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>

#include "cr.h"

#define RFD	40
#define WFD	41
#define PIPE_SZ	(1 << 20)
#define DATA	(100 << 10)
#define FULL_R	42
#define FULL_W	43

static unsigned char data[DATA], got[DATA + 4096], full[PIPE_SZ], full_got[PIPE_SZ];

static int queued(void)
{
	int n = -1;

	return ioctl(RFD, FIONREAD, &n) ? -1 : n;
}

int main(void)
{
	int p[2], size_before, rfl_before, wfl_before;
	ssize_t n, total = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);

	if (pipe(p))
		ksft_exit_fail_msg("pipe: %s", strerror(errno));
	if (dup2(p[0], RFD) != RFD || dup2(p[1], WFD) != WFD)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	if (fcntl(WFD, F_SETPIPE_SZ, PIPE_SZ) < 0)
		ksft_exit_fail_msg("F_SETPIPE_SZ %d: %s", PIPE_SZ, strerror(errno));
	if (fcntl(RFD, F_SETFL, O_NONBLOCK) || fcntl(WFD, F_SETFL, O_NONBLOCK))
		ksft_exit_fail_msg("F_SETFL: %s", strerror(errno));
	cr_fill(data, DATA, 99);
	cr_write_all(WFD, data, DATA, "pipe");
	if (fcntl(WFD, F_SETFL, 0))	/* write end back to blocking */
		ksft_exit_fail_msg("F_SETFL: %s", strerror(errno));

	if (pipe2(p, O_NONBLOCK) || dup2(p[0], FULL_R) != FULL_R || dup2(p[1], FULL_W) != FULL_W)
		ksft_exit_fail_msg("the full pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	if (fcntl(FULL_W, F_SETPIPE_SZ, PIPE_SZ) != PIPE_SZ)
		ksft_exit_fail_msg("F_SETPIPE_SZ %d: %s", PIPE_SZ, strerror(errno));
	cr_fill(full, PIPE_SZ, 7);
	cr_write_all(FULL_W, full, PIPE_SZ, "the full pipe");
	if (write(FULL_W, "x", 1) != -1 || errno != EAGAIN)
		ksft_exit_fail_msg("setup: the full pipe takes more");

	size_before = fcntl(RFD, F_GETPIPE_SZ);
	rfl_before = fcntl(RFD, F_GETFL);
	wfl_before = fcntl(WFD, F_GETFL);
	if (size_before < PIPE_SZ || queued() != DATA)
		ksft_exit_fail_msg("setup: pipe size %d, %d bytes queued", size_before, queued());
	ksft_print_msg("setup ok: pipe size %d, %d bytes queued", size_before, queued());

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(fcntl(RFD, F_GETPIPE_SZ) == size_before && fcntl(WFD, F_GETPIPE_SZ) == size_before,
			 "pipe size %d == %d", fcntl(RFD, F_GETPIPE_SZ), size_before);
	ksft_test_result(fcntl(RFD, F_GETFL) == rfl_before && fcntl(WFD, F_GETFL) == wfl_before,
			 "status flags %#x %#x == %#x %#x", fcntl(RFD, F_GETFL), fcntl(WFD, F_GETFL),
			 rfl_before, wfl_before);
	ksft_test_result(queued() == DATA, "%d bytes queued == %d", queued(), DATA);
	while (total < (ssize_t)sizeof(got) && (n = read(RFD, got + total, sizeof(got) - total)) > 0)
		total += n;
	ksft_test_result(total == DATA && cr_check(got, DATA, 99) < 0,
			 "read back exactly the %d buffered bytes (got %zd, first bad %ld)",
			 DATA, total, total ? cr_check(got, total < DATA ? total : DATA, 99) : -1L);
	ksft_test_result(read(RFD, got, 1) < 0 && errno == EAGAIN, "nothing more in the pipe");
	ksft_test_result(write(WFD, "z", 1) == 1 && read(RFD, got, 2) == 1 && got[0] == 'z',
			 "write end still connected to read end");
	total = 0;
	while (total < PIPE_SZ && (n = read(FULL_R, full_got + total, PIPE_SZ - total)) > 0)
		total += n;
	ksft_test_result(total == PIPE_SZ && cr_check(full_got, PIPE_SZ, 7) < 0 && read(FULL_R, got, 1) < 0,
			 "the full pipe holds its %d bytes again (got %zd)", PIPE_SZ, total);
	ksft_finished();
}

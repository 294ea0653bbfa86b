// SPDX-License-Identifier: MIT
/*
 * pipe_blocked_read: checkpointed while blocked in read() on an empty pipe
 * (both ends in the subject). After restart the runner's poke
 * (pipe_blocked_read.poke) writes "hello" into the write end through
 * /proc/PID/fd/51: the read must return those 5 bytes, not fail with EINTR
 * or leak the kernel's ERESTARTSYS (errno 512).
 *
 *   fd 50: read end (blocking), fd 51: write end
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>

#include "cr.h"

#define RFD	50
#define WFD	51

int main(void)
{
	char buf[64] = "";
	int p[2], n = -1, err;
	ssize_t r;

	cr_init();		/* SIGTERM blocked: it cannot interrupt the read */
	ksft_print_header();
	ksft_set_plan(3);

	if (pipe(p))
		ksft_exit_fail_msg("pipe: %s", strerror(errno));
	if (dup2(p[0], RFD) != RFD || dup2(p[1], WFD) != WFD)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	/* Setup verification: the ends are connected, the pipe is empty. */
	if (write(WFD, "x", 1) != 1 || read(RFD, buf, sizeof(buf)) != 1 || buf[0] != 'x')
		ksft_exit_fail_msg("setup: pipe does not work");
	if (ioctl(RFD, FIONREAD, &n) || n != 0 || (fcntl(RFD, F_GETFL) & O_NONBLOCK))
		ksft_exit_fail_msg("setup: pipe not empty or not blocking");

	cr_ready_in(SYS_read);
	r = read(RFD, buf, sizeof(buf) - 1);
	err = errno;
	if (r >= 0)
		buf[r] = 0;

	cr_wait_sigterm();
	ksft_test_result(r >= 0, "read() succeeded (ret %zd, errno %d%s)", r, r < 0 ? err : 0,
			 r < 0 && err == 512 ? " = ERESTARTSYS leaked" : "");
	ksft_test_result(r == 5 && !memcmp(buf, "hello", 5), "read() returned the poked \"hello\" (%zd bytes)", r);
	ksft_test_result(write(WFD, "y", 1) == 1 && read(RFD, buf, sizeof(buf)) == 1 && buf[0] == 'y',
			 "pipe still works afterwards");
	ksft_finished();
}

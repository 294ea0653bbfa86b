// SPDX-License-Identifier: MIT
/*
 * pty_state: ptys in every state a program can leave them in come back in
 * it. A master whose slave was never opened waits (no POLLHUP: a program
 * polling it would spin otherwise); one whose slave was closed polls
 * POLLHUP; a pair in packet mode keeps what was queued both ways, the
 * slave's owner and mode, and a second open of the slave; a slave whose
 * master was closed stays hung up; a session whose controlling terminal
 * has no fd left on it opens /dev/tty.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include "cr.h"

static short revents(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

static int pair(int *slave)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	if (m < 0 || unlockpt(m))
		ksft_exit_fail_msg("setup: posix_openpt: %s", strerror(errno));
	if (slave && (*slave = open(ptsname(m), O_RDWR | O_NOCTTY)) < 0)
		ksft_exit_fail_msg("setup: open %s: %s", ptsname(m), strerror(errno));
	return m;
}

int main(void)
{
	int never, closed, pm, ps, ps2, gone_s, cm, s, one = 1;
	char buf[64];
	struct stat st;
	ssize_t n;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);

	never = pair(NULL);
	closed = pair(&s);
	close(s);
	pm = pair(&ps);
	if (ioctl(pm, TIOCPKT, &one) || fchown(ps, 4242, 5) || fchmod(ps, 0640))
		ksft_exit_fail_msg("setup: packet mode, owner: %s", strerror(errno));
	ps2 = open(ptsname(pm), O_RDWR | O_NOCTTY);
	if (ps2 < 0 || write(pm, "to slave\n", 9) != 9 || write(ps, "to master", 9) != 9)
		ksft_exit_fail_msg("setup: queueing: %s", strerror(errno));
	cm = pair(&gone_s);
	close(cm);
	/* A session of its own whose terminal has no fd left on it. */
	if (setsid() < 0)
		ksft_exit_skip("setsid: %s (already a group leader)\n", strerror(errno));
	cm = pair(&s);
	if (ioctl(s, TIOCSCTTY, 0))
		ksft_exit_fail_msg("setup: TIOCSCTTY: %s", strerror(errno));
	close(s);
	usleep(100000); /* the line discipline takes the bytes behind the write */
	if (revents(never) & POLLHUP || !(revents(closed) & POLLHUP) || !(revents(gone_s) & POLLHUP))
		ksft_exit_fail_msg("setup: poll states %x %x %x", revents(never), revents(closed), revents(gone_s));
	ksft_print_msg("setup ok\n");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(!(revents(never) & (POLLHUP | POLLIN)), "a master whose slave was never opened waits (%x)", revents(never));
	ksft_test_result(revents(closed) & POLLHUP, "a master whose slave was closed polls POLLHUP (%x)", revents(closed));
	n = read(ps, buf, sizeof(buf));
	ksft_test_result(n == 9 && !memcmp(buf, "to slave\n", 9), "the slave reads what was queued for it (%zd)", n);
	/* What the slave wrote and its echo of what the master wrote (which
	 * the line discipline did behind the write, before or after): once each. */
	n = read(pm, buf, sizeof(buf));
	ksft_test_result(n == 20 && buf[0] == 0 && (!memcmp(buf + 1, "to slave\r\nto master", 19) || !memcmp(buf + 1, "to masterto slave\r\n", 19)),
			 "the master reads, in packet mode, what was queued for it, echo included, once (%zd)", n);
	memset(&st, 0, sizeof(st));
	fstat(ps2, &st);
	ksft_test_result(st.st_uid == 4242 && st.st_gid == 5 && (st.st_mode & 0777) == 0640,
			 "the slave keeps its owner and mode (%u:%u %o)", st.st_uid, st.st_gid, st.st_mode & 0777);
	ksft_test_result(write(ps2, "x", 1) == 1 && read(pm, buf, sizeof(buf)) == 2, "the second open of the slave is on the same pty");
	ksft_test_result(read(gone_s, buf, 1) == 0 && write(gone_s, "x", 1) < 0 && errno == EIO, "a slave whose master was closed is hung up");
	s = open("/dev/tty", O_RDWR);
	ksft_test_result(s >= 0 && write(cm, "ctty\n", 5) == 5 && read(s, buf, sizeof(buf)) == 5, "the controlling terminal opens as /dev/tty (%s)", s < 0 ? strerror(errno) : "ok");
	ksft_finished();
}

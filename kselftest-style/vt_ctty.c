// SPDX-License-Identifier: MIT
/*
 * vt_ctty: a session leader whose controlling terminal is a virtual
 * console it opened (a getty-style program, zdtm vt) gets the console
 * opened again by path and as its controlling terminal:
 *
 *   fd 40: $CR_DIR/tty6, a node of tty6 (4:6), read-only, opened without
 *          O_NOCTTY by the leader of a session without a terminal
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cr.h"

#define VT	40

/* Field 7 of /proc/self/stat: the controlling terminal, or 0. */
static int tty_nr(void)
{
	char buf[1024], *p;
	int nr = -1;
	FILE *f = fopen("/proc/self/stat", "re");

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %*d %*d %*d %d", &nr);
	fclose(f);
	return nr;
}

int main(void)
{
	struct stat v1, v2;
	int fd, nr;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	if (setsid() < 0 && getsid(0) != getpid())
		ksft_exit_fail_msg("setsid: %s", strerror(errno));
	if (tty_nr() != 0)
		ksft_exit_fail_msg("setup: a controlling terminal %d already", tty_nr());
	if (mknod(cr_path("tty6"), S_IFCHR | 0600, makedev(4, 6)))
		ksft_exit_fail_msg("mknod: %s", strerror(errno));
	fd = open(cr_path("tty6"), O_RDONLY);
	if (fd < 0) {
		ksft_print_msg("open tty6: %s", strerror(errno));
		ksft_exit_skip("no 4:6 here");
	}
	if (dup2(fd, VT) != VT)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(fd);
	nr = tty_nr();
	if (fstat(VT, &v1) || nr != (int)((4 << 8) | 6)) {
		ksft_print_msg("controlling terminal %#x", nr);
		ksft_exit_skip("tty6 is some other session's terminal");
	}
	ksft_print_msg("setup ok");

	cr_ready();
	cr_wait_sigterm();

	if (fstat(VT, &v2))
		ksft_exit_fail_msg("fstat: %s", strerror(errno));
	ksft_test_result(v2.st_rdev == v1.st_rdev && v2.st_ino == v1.st_ino,
			 "fd %d is the tty6 node again (rdev %#lx)", VT, (unsigned long)v2.st_rdev);
	ksft_test_result((fcntl(VT, F_GETFL) & O_ACCMODE) == O_RDONLY, "read-only");
	ksft_test_result(tty_nr() == nr, "tty6 is the controlling terminal again (%#x, was %#x)", tty_nr(), nr);
	ksft_finished();
}

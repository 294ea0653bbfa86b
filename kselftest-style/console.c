// SPDX-License-Identifier: MIT
/*
 * console: the console and a virtual console that are not the session's
 * controlling terminal are opened again by path, as CRIU does (zdtm
 * console), not refused as someone else's terminal:
 *
 *   fd 40: $CR_DIR/console, a node of /dev/console (5:1), read-only
 *   fd 41: $CR_DIR/tty5, a node of tty5 (4:5), opened O_NOCTTY, write-only
 *
 * The subject leads its own session without a controlling terminal; the
 * restart's opens must not give it one.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cr.h"

#define CONSOLE	40
#define VT	41

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

static void node(const char *name, int major, int minor, int flags, int at)
{
	int fd;

	if (mknod(cr_path(name), S_IFCHR | 0600, makedev(major, minor)))
		ksft_exit_fail_msg("mknod %s: %s", name, strerror(errno));
	fd = open(cr_path(name), flags);
	if (fd < 0) {
		ksft_print_msg("open %s: %s", name, strerror(errno));
		ksft_exit_skip("no %d:%d here", major, minor);
	}
	if (dup2(fd, at) != at)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(fd);
}

int main(void)
{
	struct stat c1, v1, c2, v2;
	int fl_c, fl_v;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	if (setsid() < 0 && getsid(0) != getpid())
		ksft_exit_fail_msg("setsid: %s", strerror(errno));
	node("console", 5, 1, O_RDONLY, CONSOLE);
	node("tty5", 4, 5, O_WRONLY | O_NOCTTY, VT);
	if (fstat(CONSOLE, &c1) || fstat(VT, &v1) || tty_nr() != 0)
		ksft_exit_fail_msg("setup: fstat, or a controlling terminal %d", tty_nr());
	fl_c = fcntl(CONSOLE, F_GETFL);
	fl_v = fcntl(VT, F_GETFL);
	ksft_print_msg("setup ok");

	cr_ready();
	cr_wait_sigterm();

	if (fstat(CONSOLE, &c2) || fstat(VT, &v2))
		ksft_exit_fail_msg("fstat: %s", strerror(errno));
	ksft_test_result(c2.st_rdev == c1.st_rdev && c2.st_ino == c1.st_ino,
			 "fd %d is the console node again (rdev %#lx)", CONSOLE, (unsigned long)c2.st_rdev);
	ksft_test_result(v2.st_rdev == v1.st_rdev && v2.st_ino == v1.st_ino,
			 "fd %d is the tty5 node again (rdev %#lx)", VT, (unsigned long)v2.st_rdev);
	ksft_test_result(fcntl(CONSOLE, F_GETFL) == fl_c && fcntl(VT, F_GETFL) == fl_v, "access modes kept");
	ksft_test_result(tty_nr() == 0, "still no controlling terminal (%d)", tty_nr());
	ksft_finished();
}

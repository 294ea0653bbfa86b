// SPDX-License-Identifier: MIT
/*
 * inotify_removed: inotify watches on files whose name is gone come back on
 * the right inode.
 *
 * All in $CR_DIR/d:
 *   wd 1: "held", open as fd 50 and removed (its last name): after restart
 *         the watch is on the file fd 50 has open again, so closing fd 50
 *         reports IN_CLOSE_WRITE on wd 1 (zdtm inotify00);
 *   wd 2: "a", a second link of "b", open as fd 51 and removed: the watch
 *         is on b's inode again (by handle), so writing b reports IN_MODIFY
 *         on wd 2;
 *   wd 3: d, which sees "held" made again after restart.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "cr.h"

#define INO	40
#define HELD	50
#define LINKED	51

static char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

/* The events queued (waiting up to ms for the first); their bytes. */
static ssize_t events(int ms)
{
	struct pollfd p = { .fd = INO, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(INO, evbuf, sizeof(evbuf));
}

/* Whether evbuf[0..n) has an event for wd with a bit of mask. */
static int has(ssize_t n, int wd, uint32_t mask)
{
	ssize_t off = 0;

	while (off + (ssize_t)sizeof(struct inotify_event) <= n) {
		struct inotify_event *e = (struct inotify_event *)(evbuf + off);

		if (e->wd == wd && (e->mask & mask))
			return 1;
		off += sizeof(*e) + e->len;
	}
	return 0;
}

/* The inode fdinfo lists for watch wd, or 0. */
static unsigned long watched_ino(int wd)
{
	char line[512];
	unsigned long ino;
	FILE *f = fopen("/proc/self/fdinfo/40", "re");
	int w;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "inotify wd:%x ino:%lx", &w, &ino) == 2 && w == wd) {
			fclose(f);
			return ino;
		}
	fclose(f);
	return 0;
}

static void place(int fd, int at, const char *what)
{
	if (fd < 0 || dup2(fd, at) != at)
		ksft_exit_fail_msg("setup: %s: %s", what, strerror(errno));
	close(fd);
}

int main(void)
{
	struct stat b, held;
	unsigned long ino_b;
	ssize_t n;
	int fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	if (mkdir(cr_path("d"), 0755))
		ksft_exit_fail_msg("setup: mkdir: %s", strerror(errno));
	place(inotify_init1(IN_NONBLOCK), INO, "inotify_init1");
	place(open(cr_path("d/held"), O_RDWR | O_CREAT | O_TRUNC, 0600), HELD, "open held");
	cr_write_all(HELD, "held", 4, "held");
	/* b first, then a: a is the name its handle finds, and it is removed. */
	fd = open(cr_path("d/b"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || close(fd) || link(cr_path("d/b"), cr_path("d/a")))
		ksft_exit_fail_msg("setup: b, a: %s", strerror(errno));
	place(open(cr_path("d/a"), O_RDONLY), LINKED, "open a");
	if (inotify_add_watch(INO, cr_path("d/held"), IN_CLOSE_WRITE | IN_MODIFY) != 1 ||
	    inotify_add_watch(INO, cr_path("d/a"), IN_MODIFY) != 2 ||
	    inotify_add_watch(INO, cr_path("d"), IN_CREATE) != 3)
		ksft_exit_fail_msg("setup: inotify_add_watch: %s", strerror(errno));
	if (unlink(cr_path("d/held")) || unlink(cr_path("d/a")))
		ksft_exit_fail_msg("setup: unlink: %s", strerror(errno));
	while (events(0) > 0)
		;
	if (stat(cr_path("d/b"), &b) || fstat(HELD, &held) || held.st_nlink != 0)
		ksft_exit_fail_msg("setup: stat: %s", strerror(errno));
	if (watched_ino(1) != held.st_ino || watched_ino(2) != b.st_ino)
		ksft_exit_fail_msg("setup: fdinfo: wd 1 on %lu, 2 on %lu", watched_ino(1), watched_ino(2));
	ksft_print_msg("setup ok: wd 1 on removed held, wd 2 on a removed link of b");

	cr_ready();
	cr_wait_sigterm();

	n = read(INO, evbuf, sizeof(evbuf));
	ksft_test_result(n < 0 && errno == EAGAIN, "no events queued after restart (read %zd)", n);
	fstat(HELD, &held);
	ksft_test_result(watched_ino(1) == held.st_ino && held.st_nlink == 0,
			 "wd 1 watches the file fd %d has open (inode %lu, fd on %lu, %lu links)",
			 HELD, watched_ino(1), (unsigned long)held.st_ino, (unsigned long)held.st_nlink);
	stat(cr_path("d/b"), &b);
	ino_b = watched_ino(2);
	ksft_test_result(ino_b == b.st_ino, "wd 2 watches b (inode %lu, b is %lu)", ino_b, (unsigned long)b.st_ino);

	close(HELD);
	n = events(1000);
	ksft_test_result(has(n, 1, IN_CLOSE_WRITE), "closing fd %d reports IN_CLOSE_WRITE on wd 1", HELD);
	fd = open(cr_path("d/b"), O_WRONLY | O_APPEND);
	cr_write_all(fd, "b", 1, "b");
	close(fd);
	n = events(1000);
	ksft_test_result(has(n, 2, IN_MODIFY), "writing b reports IN_MODIFY on wd 2");
	fd = open(cr_path("d/held"), O_WRONLY | O_CREAT, 0600);
	close(fd);
	n = events(1000);
	ksft_test_result(has(n, 3, IN_CREATE), "making held again reports IN_CREATE on wd 3");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * inotify: an inotify instance survives checkpoint/restart with its watches,
 * their masks and their watch descriptors, gaps included, and reports
 * changes made after the restart.
 *
 *   fd 40: IN_NONBLOCK; watches (wd 2 and 4 were removed before the
 *          checkpoint, so the numbers have gaps):
 *            wd 1: $CR_DIR/dir   IN_CREATE|IN_DELETE|IN_ONLYDIR
 *            wd 3: $CR_DIR/file  IN_MODIFY|IN_CLOSE_WRITE
 *            wd 5: $CR_DIR       IN_ATTRIB|IN_EXCL_UNLINK
 *   fd 41: blocking, no watches
 */
#define _GNU_SOURCE
#include <limits.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "cr.h"

#define INO	40
#define EMPTY	41
#define NW	8

struct w {
	int wd;
	unsigned long ino, mask;
};

/* The watches listed in fd's fdinfo, in order; their count. */
static int watches(int fd, struct w *w)
{
	char path[64], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f) && n < NW)
		if (sscanf(line, "inotify wd:%x ino:%lx sdev:%*x mask:%lx", &w[n].wd, &w[n].ino, &w[n].mask) == 3)
			n++;
	fclose(f);
	return n;
}

static int cmp_wd(const void *a, const void *b) { return ((const struct w *)a)->wd - ((const struct w *)b)->wd; }

static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static int add(const char *name, uint32_t mask)
{
	int wd = inotify_add_watch(INO, cr_path(name), mask);

	if (wd < 0)
		ksft_exit_fail_msg("inotify_add_watch %s: %s", name, strerror(errno));
	return wd;
}

static char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

/* Read the queued events (waiting up to ms for the first); their bytes. */
static ssize_t events(int ms)
{
	if (!readable(INO, ms))
		return 0;
	return read(INO, evbuf, sizeof(evbuf));
}

/* The first event of evbuf[0..n) for wd with a mask bit of `mask`, or NULL. */
static struct inotify_event *find(ssize_t n, int wd, uint32_t mask)
{
	ssize_t off = 0;

	while (off + (ssize_t)sizeof(struct inotify_event) <= n) {
		struct inotify_event *e = (struct inotify_event *)(evbuf + off);

		if (e->wd == wd && (e->mask & mask))
			return e;
		off += sizeof(*e) + e->len;
	}
	return NULL;
}

static void touch(const char *name)
{
	int fd = open(cr_path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		ksft_exit_fail_msg("open %s: %s", name, strerror(errno));
	close(fd);
}

int main(void)
{
	struct w before[NW], after[NW];
	struct inotify_event *e;
	int nb, na, fl, fl_empty, i, wd[5], same, fd, next;
	ssize_t n;

	cr_init();
	ksft_print_header();
	ksft_set_plan(9);

	if (mkdir(cr_path("dir"), 0755) || mkdir(cr_path("gap"), 0755))
		ksft_exit_fail_msg("mkdir: %s", strerror(errno));
	touch("file");
	touch("gap2");
	fd = inotify_init1(IN_NONBLOCK);
	if (fd < 0 || dup2(fd, INO) != INO)
		ksft_exit_fail_msg("inotify_init1: %s", strerror(errno));
	close(fd);
	fd = inotify_init();
	if (fd < 0 || dup2(fd, EMPTY) != EMPTY)
		ksft_exit_fail_msg("inotify_init: %s", strerror(errno));
	close(fd);
	wd[0] = add("dir", IN_CREATE | IN_DELETE | IN_ONLYDIR);
	wd[1] = add("gap", IN_ALL_EVENTS);
	wd[2] = add("file", IN_MODIFY | IN_CLOSE_WRITE);
	wd[3] = add("gap2", IN_ALL_EVENTS);
	wd[4] = add(".", IN_ATTRIB | IN_EXCL_UNLINK);
	if (wd[0] != 1 || wd[1] != 2 || wd[2] != 3 || wd[3] != 4 || wd[4] != 5)
		ksft_exit_fail_msg("setup: watch descriptors %d %d %d %d %d", wd[0], wd[1], wd[2], wd[3], wd[4]);
	if (inotify_rm_watch(INO, 2) || inotify_rm_watch(INO, 4))
		ksft_exit_fail_msg("inotify_rm_watch: %s", strerror(errno));
	while (events(0) > 0)	/* the IN_IGNORED of wd 2 and 4 */
		;
	nb = watches(INO, before);
	qsort(before, nb, sizeof(before[0]), cmp_wd);
	if (nb != 3 || before[0].wd != 1 || before[1].wd != 3 || before[2].wd != 5)
		ksft_exit_fail_msg("setup: %d watches in fdinfo", nb);
	fl = fcntl(INO, F_GETFL);
	fl_empty = fcntl(EMPTY, F_GETFL);
	ksft_print_msg("setup ok: watches 1, 3, 5");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(fcntl(INO, F_GETFL) == fl && fcntl(EMPTY, F_GETFL) == fl_empty,
			 "status flags %#x %#x == %#x %#x", fcntl(INO, F_GETFL), fcntl(EMPTY, F_GETFL), fl, fl_empty);
	na = watches(INO, after);
	qsort(after, na > 0 ? na : 0, sizeof(after[0]), cmp_wd);
	same = na == nb;
	for (i = 0; same && i < na; i++)
		same = after[i].wd == before[i].wd && after[i].ino == before[i].ino && after[i].mask == before[i].mask;
	ksft_test_result(same, "fdinfo lists the same %d watches (wd, inode, mask): %d after restart", nb, na);
	ksft_test_result(watches(EMPTY, after) == 0 && !readable(EMPTY, 0), "fd %d still has no watches", EMPTY);
	n = read(INO, evbuf, sizeof(evbuf));
	ksft_test_result(n < 0 && errno == EAGAIN, "no stray events queued (IN_IGNORED of used-up numbers): read %zd", n);

	touch("dir/new");
	n = events(1000);
	e = find(n, 1, IN_CREATE);
	ksft_test_result(e && e->len && !strcmp(e->name, "new"), "wd 1 reports IN_CREATE of dir/new (%zd bytes of events)", n);
	cr_write_all(open(cr_path("file"), O_WRONLY | O_APPEND | O_CLOEXEC), "x", 1, "file");
	n = events(1000);
	ksft_test_result(find(n, 3, IN_MODIFY) != NULL, "wd 3 reports IN_MODIFY of file (%zd bytes of events)", n);
	chmod(cr_path("file"), 0600);
	n = events(1000);
	e = find(n, 5, IN_ATTRIB);
	ksft_test_result(e && e->len && !strcmp(e->name, "file"), "wd 5 reports IN_ATTRIB of file in $CR_DIR");
	touch("gap2");
	n = events(200);
	ksft_test_result(!find(n, 2, ~0u) && !find(n, 4, ~0u), "removed watches stay removed");
	next = inotify_add_watch(INO, cr_path("gap2"), IN_OPEN);
	ksft_test_result(next == 6, "a new watch gets wd %d (want 6)", next);
	ksft_finished();
}

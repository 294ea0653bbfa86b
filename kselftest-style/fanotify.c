// SPDX-License-Identifier: MIT
/*
 * fanotify: a fanotify group survives checkpoint/restart with its
 * fanotify_init flags and its marks (zdtm fanotify00):
 *
 *   fd 40: FAN_CLASS_NOTIF|FAN_NONBLOCK|FAN_UNLIMITED_QUEUE, O_RDONLY
 *          inode mark on "watched": FAN_OPEN|FAN_CLOSE_WRITE, ignoring
 *            FAN_ACCESS
 *          inode mark on "gone", open as fd 50 and removed: FAN_MODIFY
 *          mount mark on $CR_DIR's mount: FAN_ONDIR|FAN_CLOSE_NOWRITE,
 *            ignoring FAN_OPEN (FAN_MARK_IGNORED_SURV_MODIFY: any write on
 *            the mount would clear it otherwise)
 *
 * Its fdinfo lines are the same after restart (but gone's inode: the file
 * fd 50 has open again), and it reports events on each inode.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/stat.h>

#include <time.h>
#include "cr.h"

#define FAN	40
#define GONE	50

static char lines[4096];

/* fd 40's fanotify lines, with gone's inode mark left out. */
static void fdinfo(char *out, size_t size, unsigned long skip_ino)
{
	char line[512];
	unsigned long ino;
	FILE *f = fopen("/proc/self/fdinfo/40", "re");

	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "fanotify ", 9))
			continue;
		if (sscanf(line, "fanotify ino:%lx", &ino) == 1 && ino == skip_ino)
			continue;
		strncat(out, line, size - strlen(out) - 1);
	}
	fclose(f);
}

/* Whether an event with a bit of mask on the file of ino is queued. */
/*
 * event_on reads the events queued, for at most a second, and says whether
 * one of mask was on inode ino. The mount mark sees every file closed on
 * that mount by anyone, so on a busy machine the queue never runs dry: the
 * time bounds the reading, and a match ends it.
 */
static int event_on(uint64_t mask, unsigned long ino)
{
	static char buf[4096] __attribute__((aligned(8)));
	struct pollfd p = { .fd = FAN, .events = POLLIN };
	struct fanotify_event_metadata *m;
	struct timespec start, now;
	struct stat st;
	ssize_t n;
	int found = 0;

	if (poll(&p, 1, 1000) != 1)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!found && (n = read(FAN, buf, sizeof(buf))) > 0) {
		for (m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->fd >= 0) {
				if ((m->mask & mask) && !fstat(m->fd, &st) && st.st_ino == ino)
					found = 1;
				close(m->fd);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= 1)
			break;
	}
	return found;
}

int main(void)
{
	char after[4096];
	struct stat watched, gone;
	int fd, fl;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);

	fd = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE);
	if (fd < 0) {
		ksft_print_msg("fanotify_init: %s", strerror(errno));
		ksft_exit_skip("no fanotify");
	}
	if (dup2(fd, FAN) != FAN)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(fd);
	fd = open(cr_path("watched"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || close(fd))
		ksft_exit_fail_msg("watched: %s", strerror(errno));
	fd = open(cr_path("gone"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, GONE) != GONE)
		ksft_exit_fail_msg("gone: %s", strerror(errno));
	close(fd);
	if (fanotify_mark(FAN, FAN_MARK_ADD, FAN_OPEN | FAN_CLOSE_WRITE, AT_FDCWD, cr_path("watched")) ||
	    fanotify_mark(FAN, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_ACCESS, AT_FDCWD, cr_path("watched")) ||
	    fanotify_mark(FAN, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, cr_path("gone")) ||
	    fanotify_mark(FAN, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_ONDIR | FAN_CLOSE_NOWRITE, AT_FDCWD, cr_dir()) ||
	    fanotify_mark(FAN, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
			  FAN_OPEN, AT_FDCWD, cr_dir()))
		ksft_exit_fail_msg("fanotify_mark: %s", strerror(errno));
	if (unlink(cr_path("gone")) || stat(cr_path("watched"), &watched) || fstat(GONE, &gone))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	event_on(0, 0); /* what the setup itself caused */
	fdinfo(lines, sizeof(lines), gone.st_ino);
	fl = fcntl(FAN, F_GETFL);
	ksft_print_msg("setup ok:\n%s", lines);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(fcntl(FAN, F_GETFL) == fl, "status flags %#x == %#x", fcntl(FAN, F_GETFL), fl);
	fstat(GONE, &gone);
	fdinfo(after, sizeof(after), gone.st_ino);
	ksft_test_result(!strcmp(lines, after), "fdinfo lists the same group and marks:\n%s", after);
	fdinfo(after, sizeof(after), 0);
	ksft_test_result(strstr(after, "mask:2 ") != NULL, "the mark on the removed file is on the one fd %d has open", GONE);
	fd = open(cr_path("watched"), O_WRONLY);
	close(fd);
	ksft_test_result(event_on(FAN_OPEN | FAN_CLOSE_WRITE, watched.st_ino), "opening watched reports FAN_OPEN or FAN_CLOSE_WRITE");
	cr_write_all(GONE, "x", 1, "gone");
	ksft_test_result(event_on(FAN_MODIFY, gone.st_ino), "writing fd %d reports FAN_MODIFY", GONE);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * inotify_mntns: a child in a mount namespace of its own mounts a tmpfs
 * that only its namespace shows and holds a directory fd on it; the parent
 * watches the tmpfs's root and a file on it through /proc/CHILD/fd (zdtm
 * inotify01) and holds the file open for writing. After the restart the
 * parent's watches and file are on the child's tmpfs again: closing the
 * file and creating another are reported.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "cr.h"

/* events reads what is queued at fd and returns the mask of its events. */
static unsigned events(int fd)
{
	char buf[4096] __attribute__((aligned(8)));
	unsigned mask = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
			mask |= ((struct inotify_event *)p)->mask;
	return mask;
}

int main(void)
{
	char dir[PATH_MAX], path[PATH_MAX], file[PATH_MAX + 16];
	int sync[2], in, real, ok = 0;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	snprintf(dir, sizeof(dir), "%s/mnt", getenv("CR_DIR") ? getenv("CR_DIR") : ".");
	if (mkdir(dir, 0755) || pipe(sync))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	child = fork();
	if (child < 0)
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) ||
		    mount("crsub", dir, "tmpfs", 0, NULL))
			_exit(1);
		int fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || dup2(fd, 100) < 0 || write(sync[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (read(sync[0], path, 1) != 1)
		ksft_exit_fail_msg("setup: the child did not mount its tmpfs");
	snprintf(path, sizeof(path), "/proc/%d/fd/100", child);
	snprintf(file, sizeof(file), "%s/kept", path);
	in = inotify_init1(IN_NONBLOCK);
	real = open(file, O_CREAT | O_RDWR, 0644);
	if (in < 0 || real < 0 || inotify_add_watch(in, path, IN_CREATE | IN_CLOSE_WRITE) != 1 ||
	    inotify_add_watch(in, file, IN_CLOSE_WRITE | IN_DELETE_SELF) != 2)
		ksft_exit_fail_msg("setup: watches: %s", strerror(errno));
	if (access(dir, F_OK) || !access(strcat(strcpy(path, dir), "/kept"), F_OK))
		ksft_exit_fail_msg("setup: the tmpfs shows outside the child's namespace");
	ksft_print_msg("setup ok: child %d, watches on its tmpfs", child);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(events(in) == 0, "no event queued after the restart");
	close(real);
	ksft_test_result(events(in) == IN_CLOSE_WRITE, "closing the kept file is reported");
	snprintf(path, sizeof(path), "/proc/%d/fd/100/new", child);
	real = open(path, O_CREAT | O_WRONLY, 0644);
	if (real >= 0)
		ok = close(real) == 0 && events(in) == (IN_CREATE | IN_CLOSE_WRITE);
	ksft_test_result(ok, "a file created on the child's tmpfs is reported");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ksft_finished();
}

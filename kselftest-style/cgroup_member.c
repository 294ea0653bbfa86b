// SPDX-License-Identifier: MIT
/*
 * cgroup_member: the process is in cgroup /sub of a named v1 hierarchy it
 * mounted, and one of its threads in /sub/thr (a v1 hierarchy places
 * threads one by one). Both cgroups are removed between checkpoint and
 * restart (cgroup_member.prerestart): the restart must make them again and
 * put the process and the thread back, each in its own. So must it the
 * empty cgroup /sub/empty, with its owner and mode, and /sub's setting
 * notify_on_release and the owner of its cgroup.procs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include "cr.h"

/* owned says whether path has mode and owner uid:gid. */
static int owned(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	return !stat(path, &st) && (st.st_mode & 07777) == mode && st.st_uid == uid && st.st_gid == gid;
}

/* first_char is the first byte of file path, or 0. */
static char first_char(const char *path)
{
	char c = 0;
	int fd = open(path, O_RDONLY);

	if (fd >= 0 && read(fd, &c, 1) != 1)
		c = 0;
	if (fd >= 0)
		close(fd);
	return c;
}

static char root[4096];
static int to_thread[2];
static volatile pid_t tid;

/* Path of the hierarchy in /proc/self/task/T/cgroup, or "" */
static void cgroup_of(pid_t t, char *out, size_t len)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/cgroup", t);
	out[0] = 0;
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (c && !strncmp(c + 1, "name=crsubtest:", 15)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, len, "%s", c + 16);
		}
	}
	if (f)
		fclose(f);
}

static void move(const char *cg, const char *file, pid_t t)
{
	char path[4200], id[16];
	int fd, n;

	snprintf(path, sizeof(path), "%s%s/%s", root, cg, file);
	n = snprintf(id, sizeof(id), "%d", t);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, id, n) != n)
		ksft_exit_fail_msg("moving %d to %s: %s", t, path, strerror(errno));
	close(fd);
}

static void *thread(void *arg)
{
	char c;

	(void)arg;
	tid = gettid();
	if (read(to_thread[0], &c, 1) != 1)
		return NULL;
	return (void *)1;
}

int main(void)
{
	char cg[512], path[4200];
	pthread_t th;
	void *ret;
	int ok, fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	snprintf(root, sizeof(root), "%s/cg", cr_dir());
	if (mkdir(root, 0700) || mount("none", root, "cgroup", 0, "none,name=crsubtest"))
		ksft_exit_fail_msg("setup: mounting a named cgroup hierarchy on %s: %s", root, strerror(errno));
	snprintf(path, sizeof(path), "%s/sub", root);
	if (mkdir(path, 0755) && errno != EEXIST)
		ksft_exit_fail_msg("setup: mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/sub/thr", root);
	if (mkdir(path, 0755) && errno != EEXIST)
		ksft_exit_fail_msg("setup: mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/sub/empty", root);
	if ((mkdir(path, 0755) && errno != EEXIST) || chmod(path, 0750) || chown(path, 1000, 1001))
		ksft_exit_fail_msg("setup: %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/sub/notify_on_release", root);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		ksft_exit_fail_msg("setup: %s: %s", path, strerror(errno));
	close(fd);
	snprintf(path, sizeof(path), "%s/sub/cgroup.procs", root);
	if (chown(path, 1000, 1000))
		ksft_exit_fail_msg("setup: %s: %s", path, strerror(errno));
	move("/sub", "cgroup.procs", getpid());
	if (pipe(to_thread) || pthread_create(&th, NULL, thread, NULL))
		ksft_exit_fail_msg("setup: thread");
	while (!tid)
		usleep(1000);
	move("/sub/thr", "tasks", tid);
	cgroup_of(tid, cg, sizeof(cg));
	if (strcmp(cg, "/sub/thr"))
		ksft_exit_fail_msg("setup: the thread is in %s", cg);
	ksft_print_msg("setup ok: process in /sub, thread %d in /sub/thr", tid);

	cr_ready();
	cr_wait_sigterm();

	cgroup_of(getpid(), cg, sizeof(cg));
	ksft_test_result(!strcmp(cg, "/sub"), "the process is in /sub (%s)", cg);
	cgroup_of(tid, cg, sizeof(cg));
	ksft_test_result(!strcmp(cg, "/sub/thr"), "the thread is in /sub/thr (%s)", cg);
	snprintf(path, sizeof(path), "%s/sub/empty", root);
	ksft_test_result(owned(path, 0750, 1000, 1001), "the empty cgroup /sub/empty, its mode and owner");
	snprintf(path, sizeof(path), "%s/sub/notify_on_release", root);
	ok = first_char(path) == '1';
	snprintf(path, sizeof(path), "%s/sub/cgroup.procs", root);
	ksft_test_result(ok && owned(path, 0644, 1000, 1000), "/sub's notify_on_release and the owner of its cgroup.procs");
	ok = write(to_thread[1], "x", 1) == 1 && pthread_join(th, &ret) == 0 && ret == (void *)1;
	ksft_test_result(ok, "the thread is joined");
	/* Leave nothing behind: back to the root, then the cgroups go. */
	move("", "cgroup.procs", getpid());
	snprintf(path, sizeof(path), "%s/sub/thr", root);
	ok = !rmdir(path);
	snprintf(path, sizeof(path), "%s/sub/empty", root);
	ok = !rmdir(path) && ok;
	snprintf(path, sizeof(path), "%s/sub", root);
	ok = !rmdir(path) && ok;
	ok = !umount(root) && ok;
	ksft_test_result(ok, "the cgroups are removed and the hierarchy unmounted");
	ksft_finished();
}

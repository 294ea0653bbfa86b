// SPDX-License-Identifier: MIT
/*
 * getpid_cwd_umask: process identity and simple per-process attributes
 * survive checkpoint/restart: getpid()/gettid() (same pid), the cwd (a temp
 * dir), the umask (027) and a lowered RLIMIT_NOFILE soft limit.
 */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <sys/stat.h>

#include "cr.h"

#define NOFILE_SOFT	200

static unsigned int status_umask(void)
{
	char line[256];
	unsigned int m = ~0u;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return m;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &m) == 1)
			break;
	fclose(f);
	return m;
}

static mode_t get_umask(void)
{
	mode_t m = umask(0);

	umask(m);
	return m;
}

int main(void)
{
	char wd[4096], cwd_before[4096], cwd_after[4096] = "";
	struct stat st_before, st_after;
	struct rlimit rl_orig, rl_before, rl_after;
	pid_t pid, tid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);

	snprintf(wd, sizeof(wd), "%s", cr_path("wd.XXXXXX"));
	if (!mkdtemp(wd))
		ksft_exit_fail_msg("mkdtemp: %s", strerror(errno));
	if (chdir(wd))
		ksft_exit_fail_msg("chdir: %s", strerror(errno));
	umask(027);
	if (getrlimit(RLIMIT_NOFILE, &rl_orig))
		ksft_exit_fail_msg("getrlimit: %s", strerror(errno));
	if (rl_orig.rlim_max != RLIM_INFINITY && rl_orig.rlim_max < NOFILE_SOFT)
		ksft_exit_skip("RLIMIT_NOFILE hard limit %lu < %d", (unsigned long)rl_orig.rlim_max, NOFILE_SOFT);
	rl_before = rl_orig;
	rl_before.rlim_cur = NOFILE_SOFT;
	if (setrlimit(RLIMIT_NOFILE, &rl_before))
		ksft_exit_fail_msg("setrlimit: %s", strerror(errno));

	pid = getpid();
	tid = gettid();
	if (!getcwd(cwd_before, sizeof(cwd_before)) || strcmp(cwd_before, wd) || stat(".", &st_before))
		ksft_exit_fail_msg("setup: cwd is not %s", wd);
	if (get_umask() != 027 || status_umask() != 027)
		ksft_exit_fail_msg("setup: umask %#o", get_umask());
	if (getrlimit(RLIMIT_NOFILE, &rl_after) || rl_after.rlim_cur != NOFILE_SOFT)
		ksft_exit_fail_msg("setup: RLIMIT_NOFILE soft %lu", (unsigned long)rl_after.rlim_cur);
	if (pid != syscall(SYS_getpid) || tid != pid)
		ksft_exit_fail_msg("setup: pid %d tid %d", pid, tid);
	ksft_print_msg("setup ok: pid %d cwd %s", pid, cwd_before);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(getpid() == pid && syscall(SYS_getpid) == pid && gettid() == tid,
			 "getpid %d, raw getpid %ld, gettid %d == %d", getpid(), syscall(SYS_getpid),
			 gettid(), pid);
	ksft_test_result(getcwd(cwd_after, sizeof(cwd_after)) && !strcmp(cwd_after, cwd_before),
			 "cwd \"%s\" == \"%s\"", cwd_after, cwd_before);
	ksft_test_result(!stat(".", &st_after) && st_after.st_dev == st_before.st_dev &&
			 st_after.st_ino == st_before.st_ino, "cwd is the same directory (dev/inode)");
	ksft_test_result(get_umask() == 027 && status_umask() == 027, "umask %#o (status %#o) == 027",
			 get_umask(), status_umask());
	memset(&rl_after, 0, sizeof(rl_after));
	getrlimit(RLIMIT_NOFILE, &rl_after);
	ksft_test_result(rl_after.rlim_cur == rl_before.rlim_cur && rl_after.rlim_max == rl_before.rlim_max,
			 "RLIMIT_NOFILE %lu/%lu == %lu/%lu", (unsigned long)rl_after.rlim_cur,
			 (unsigned long)rl_after.rlim_max, (unsigned long)rl_before.rlim_cur,
			 (unsigned long)rl_before.rlim_max);
	ksft_finished();
}

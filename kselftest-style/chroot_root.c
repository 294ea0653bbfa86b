// SPDX-License-Identifier: MIT
/*
 * chroot_root: a process chrooted into its test directory, its working
 * directory inside the new root and an fd on a file there. After restart
 * its root is the same directory (same inode), "/" holds what the
 * directory holds, the working directory is where it was, and the fd reads
 * the file.
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include "cr.h"

int main(void)
{
	struct stat dir, root, fst;
	char cwd[256] = "", buf[16] = "";
	int fd, subfd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	if (stat(cr_dir(), &dir))
		ksft_exit_fail_msg("stat %s: %s", cr_dir(), strerror(errno));
	if (mkdir(cr_path("sub"), 0700))
		ksft_exit_fail_msg("mkdir: %s", strerror(errno));
	fd = open(cr_path("sub/data"), O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		ksft_exit_fail_msg("open: %s", strerror(errno));
	cr_write_all(fd, "jailed", 6, "data");
	if (chdir(cr_path("sub")) || chroot(cr_dir()))
		ksft_exit_fail_msg("chdir/chroot: %s", strerror(errno));
	/* cr.h's files are now under "/". */
	setenv("CR_DIR", "/", 1);
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/sub") || access("/sub/data", F_OK))
		ksft_exit_fail_msg("setup: cwd %s, /sub/data %s", cwd, strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	memset(&root, 0, sizeof(root));
	stat("/", &root);
	ksft_test_result(root.st_ino == dir.st_ino && root.st_dev == dir.st_dev,
			 "the root is the test directory (inode %lu, want %lu)", (unsigned long)root.st_ino,
			 (unsigned long)dir.st_ino);
	ksft_test_result(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, "/sub"), "the working directory is /sub (%s)", cwd);
	subfd = open("data", O_RDONLY);
	ksft_test_result(subfd >= 0 && fstat(subfd, &fst) == 0 && access("/ready", F_OK) == 0 &&
			 access(cr_path("sub/data"), F_OK) == 0,
			 "relative and absolute paths resolve inside the root");
	ksft_test_result(pread(fd, buf, 6, 0) == 6 && !memcmp(buf, "jailed", 6), "the fd reads the file (%.6s)", buf);
	ksft_finished();
}

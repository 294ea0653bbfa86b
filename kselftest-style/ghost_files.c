// SPDX-License-Identifier: MIT
/*
 * ghost_files: files open after their last name was removed come back as
 * they were: a sparse file keeps its holes, owner, mode and times; a
 * write-only one its contents; two descriptions of one such file stay one
 * inode; a device node and a FIFO (with buffered bytes) are made again; a
 * file removed but linked elsewhere is the same inode; a removed working
 * directory is the same directory as an fd open on it, under its own name;
 * an O_TMPFILE file (never named) keeps its contents; O_PATH|O_NOFOLLOW fds
 * on a symbolic link, and on one removed since, are links to the same target.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cr.h"

#define BLK	 4096
#define SPARSE	 (64 * BLK)	/* data at blocks 1 and 40, holes elsewhere */
#define MTIME	 1234567890
#define FIFO_MSG "buffered in a removed fifo"

static unsigned char blk[BLK], rb[BLK];

static int is_deleted_link(int fd, const char *want)
{
	char p[64], link[4096];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = readlink(p, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return !strcmp(link, want);
}

static int data_at(int fd, off_t off, uint64_t seed)
{
	return pread(fd, rb, BLK, off) == BLK && cr_check(rb, BLK, seed) < 0;
}

int main(void)
{
	int sparse, wonly, rd1, rd2, dev, fifo_r, fifo_w, linked, dirfd, tmp, sl, sl_gone, fl_sl;
	char lt[64];
	struct timespec ts[2] = { { 100, 0 }, { MTIME, 0 } };
	char want[4096], cwd[4096];
	struct stat st, st2, before_linked, before_dir;
	ssize_t n;
	int ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(12);

	/* A sparse file: two data blocks, holes around them. */
	sparse = open(cr_path("sparse"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (sparse < 0)
		ksft_exit_fail_msg("open sparse: %s", strerror(errno));
	cr_fill(blk, BLK, 1);
	if (pwrite(sparse, blk, BLK, BLK) != BLK)
		ksft_exit_fail_msg("pwrite: %s", strerror(errno));
	cr_fill(blk, BLK, 2);
	if (pwrite(sparse, blk, BLK, 40 * BLK) != BLK || ftruncate(sparse, SPARSE))
		ksft_exit_fail_msg("pwrite/ftruncate: %s", strerror(errno));
	if (lseek(sparse, 0, SEEK_HOLE) != 0 || lseek(sparse, BLK, SEEK_HOLE) != 2 * BLK)
		ksft_exit_skip("this filesystem keeps no holes\n");
	if (fchown(sparse, 1, 2) || fchmod(sparse, 0751) || futimens(sparse, ts))
		ksft_exit_fail_msg("fchown/fchmod/futimens: %s", strerror(errno));
	if (unlink(cr_path("sparse")))
		ksft_exit_fail_msg("unlink: %s", strerror(errno));

	/* Write-only. */
	wonly = open(cr_path("wonly"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_fill(blk, BLK, 3);
	if (wonly < 0 || write(wonly, blk, BLK) != BLK || unlink(cr_path("wonly")))
		ksft_exit_fail_msg("wonly: %s", strerror(errno));

	/* Two descriptions of one file. */
	rd1 = open(cr_path("twice"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	rd2 = open(cr_path("twice"), O_RDONLY);
	if (rd1 < 0 || rd2 < 0 || write(rd1, "x", 1) != 1 || unlink(cr_path("twice")))
		ksft_exit_fail_msg("twice: %s", strerror(errno));

	/* A device node (/dev/null's numbers). */
	if (mknod(cr_path("null"), S_IFCHR | 0640, makedev(1, 3)))
		ksft_exit_fail_msg("mknod: %s", strerror(errno));
	dev = open(cr_path("null"), O_RDWR);
	if (dev < 0 || unlink(cr_path("null")))
		ksft_exit_fail_msg("dev: %s", strerror(errno));

	/* A FIFO with bytes in it, its writer closed. */
	if (mkfifo(cr_path("fifo"), 0600))
		ksft_exit_fail_msg("mkfifo: %s", strerror(errno));
	fifo_w = open(cr_path("fifo"), O_RDWR);
	fifo_r = open(cr_path("fifo"), O_RDONLY | O_NONBLOCK);
	if (fifo_w < 0 || fifo_r < 0 || write(fifo_w, FIFO_MSG, sizeof(FIFO_MSG)) != sizeof(FIFO_MSG))
		ksft_exit_fail_msg("fifo: %s", strerror(errno));
	if (unlink(cr_path("fifo")))
		ksft_exit_fail_msg("unlink fifo: %s", strerror(errno));
	close(fifo_w);

	/* Removed, but linked elsewhere. */
	linked = open(cr_path("linked"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (linked < 0 || link(cr_path("linked"), cr_path("other-name")) || unlink(cr_path("linked")) ||
	    fstat(linked, &before_linked))
		ksft_exit_fail_msg("linked: %s", strerror(errno));

	/* An O_TMPFILE file: never named. */
	tmp = open(cr_dir(), O_RDWR | O_TMPFILE, 0640);
	if (tmp < 0 || write(tmp, "tmpfile", 7) != 7)
		ksft_exit_fail_msg("O_TMPFILE: %s", strerror(errno));

	/* Symbolic links held O_PATH|O_NOFOLLOW, one removed since. */
	if (symlink("no such target", cr_path("sl")) || symlink("gone target", cr_path("sl-gone")))
		ksft_exit_fail_msg("symlink: %s", strerror(errno));
	sl = open(cr_path("sl"), O_PATH | O_NOFOLLOW);
	sl_gone = open(cr_path("sl-gone"), O_PATH | O_NOFOLLOW);
	if (sl < 0 || sl_gone < 0 || unlink(cr_path("sl-gone")))
		ksft_exit_fail_msg("sl: %s", strerror(errno));
	fl_sl = fcntl(sl_gone, F_GETFL);

	/* A removed working directory, also open as an fd. */
	if (mkdir(cr_path("gone"), 0700))
		ksft_exit_fail_msg("mkdir: %s", strerror(errno));
	dirfd = open(cr_path("gone"), O_DIRECTORY | O_RDONLY);
	if (dirfd < 0 || chdir(cr_path("gone")) || rmdir(cr_path("gone")) || fstat(dirfd, &before_dir))
		ksft_exit_fail_msg("gone: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	ok = !fstat(sparse, &st) && st.st_size == SPARSE && st.st_uid == 1 && st.st_gid == 2 &&
	     (st.st_mode & 07777) == 0751 && st.st_nlink == 0 && st.st_mtime == MTIME;
	ksft_test_result(ok, "sparse: size, owner %d:%d, mode %o, mtime kept", (int)st.st_uid, (int)st.st_gid,
			 st.st_mode & 07777);
	ok = lseek(sparse, 0, SEEK_HOLE) == 0 && lseek(sparse, 0, SEEK_DATA) == BLK &&
	     lseek(sparse, BLK, SEEK_HOLE) == 2 * BLK && lseek(sparse, 2 * BLK, SEEK_DATA) == 40 * BLK &&
	     lseek(sparse, 40 * BLK, SEEK_HOLE) == 41 * BLK && data_at(sparse, BLK, 1) && data_at(sparse, 40 * BLK, 2);
	ksft_test_result(ok, "sparse: data where it was, holes where they were");
	ok = (fcntl(wonly, F_GETFL) & O_ACCMODE) == O_WRONLY && !fstat(wonly, &st) && st.st_size == BLK;
	snprintf(want, sizeof(want), "/proc/self/fd/%d", wonly);
	{
		int r = open(want, O_RDONLY);

		ok = ok && r >= 0 && data_at(r, 0, 3);
		close(r);
	}
	ksft_test_result(ok, "write-only: still write-only, contents kept");
	ok = !fstat(rd1, &st) && !fstat(rd2, &st2) && st.st_ino == st2.st_ino && st.st_dev == st2.st_dev &&
	     pwrite(rd1, "y", 1, 0) == 1 && pread(rd2, rb, 1, 0) == 1 && rb[0] == 'y';
	snprintf(want, sizeof(want), "%s (deleted)", cr_path("twice"));
	ksft_test_result(ok && is_deleted_link(rd1, want), "two descriptions: one inode, under its own name");
	ok = !fstat(dev, &st) && st.st_mode == (S_IFCHR | 0640) && st.st_rdev == makedev(1, 3) &&
	     write(dev, "x", 1) == 1 && access(cr_path("null"), F_OK) < 0;
	ksft_test_result(ok, "device node: mode %o, rdev kept, works, no name left", st.st_mode);
	memset(rb, 0, sizeof(FIFO_MSG));
	n = read(fifo_r, rb, sizeof(rb));
	ksft_test_result(n == sizeof(FIFO_MSG) && !memcmp(rb, FIFO_MSG, n), "FIFO: buffered bytes kept (%zd)", n);
	ok = !fstat(linked, &st) && st.st_ino == before_linked.st_ino && st.st_dev == before_linked.st_dev &&
	     !stat(cr_path("other-name"), &st2) && st2.st_ino == st.st_ino;
	ksft_test_result(ok, "removed but linked elsewhere: the same inode");
	ok = !stat("/proc/self/cwd", &st) && !fstat(dirfd, &st2) && st.st_ino == st2.st_ino && st.st_dev == st2.st_dev;
	ksft_test_result(ok, "removed cwd and its fd: one directory");
	n = readlink("/proc/self/cwd", cwd, sizeof(cwd) - 1);
	cwd[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof(want), "%s (deleted)", cr_path("gone"));
	ksft_test_result(!strcmp(cwd, want) && access(cr_path("gone"), F_OK) < 0, "removed cwd: %s", cwd);
	memset(rb, 0, 8);
	ok = !fstat(tmp, &st) && st.st_nlink == 0 && (st.st_mode & 0777) == 0640 && pread(tmp, rb, 8, 0) == 7 &&
	     !memcmp(rb, "tmpfile", 7) && lseek(tmp, 0, SEEK_CUR) == 7;
	ksft_test_result(ok, "O_TMPFILE: contents, mode, offset kept, no name");
	n = readlinkat(sl, "", lt, sizeof(lt) - 1);
	lt[n > 0 ? n : 0] = 0;
	ok = !fstat(sl, &st) && S_ISLNK(st.st_mode) && !strcmp(lt, "no such target");
	ksft_test_result(ok, "symbolic link: O_PATH fd on the link, target %s", lt);
	n = readlinkat(sl_gone, "", lt, sizeof(lt) - 1);
	lt[n > 0 ? n : 0] = 0;
	ok = !fstat(sl_gone, &st) && S_ISLNK(st.st_mode) && st.st_nlink == 0 && !strcmp(lt, "gone target") &&
	     fcntl(sl_gone, F_GETFL) == fl_sl && access(cr_path("sl-gone"), F_OK) < 0 && errno == ENOENT;
	snprintf(want, sizeof(want), "%s (deleted)", cr_path("sl-gone"));
	ksft_test_result(ok && is_deleted_link(sl_gone, want), "removed symbolic link: target %s, flags %#o, no name",
			 lt, fcntl(sl_gone, F_GETFL));
	if (chdir(cr_dir()))
		ksft_exit_fail_msg("chdir back: %s", strerror(errno));
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * ns_mounts: a process that made mount, pid, UTS and IPC namespaces
 * (unshare), gave itself a root of its own (a bind mount of /,
 * pivot_root'ed to, with /dev bind-mounted in from outside), and mounted
 * in it: a tmpfs holding a file it keeps open and mapped shared (and a
 * directory, a symbolic link, a hard link, a FIFO, an extended attribute
 * and a set-gid mode), a bind mount of a directory of the root, read-only,
 * another tmpfs mounted over a directory of the first, a file of the
 * tmpfs bound onto a file of the root and another bound over that one
 * (a file mount stacked on a file mount), and a proc its
 * init (pid 1 of the pid namespace, its child) mounted for its pid
 * namespace. Checkpointed from the host, it checks from inside after the
 * restart: the file's contents through its fd, its mapping and its path,
 * the rest of the tmpfs, the bind mount still read-only and showing the
 * directory, the tmpfs under the other one, proc showing its init as pid
 * 1, the hostname; and that its mountinfo reads as before (the .poke
 * checks it from outside too, through /proc/PID/mountinfo).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <linux/magic.h>
#include "cr.h"

#define HOSTNAME "crsub-mounts"
#define SIZE (3 * 4096)

static char dir[3800], tmp[4000], over[4100], src[4000], bind[4000], newroot[4000], fbind[4000];

static void must(int ok, const char *what)
{
	if (!ok)
		ksft_exit_fail_msg("setup: %s: %s", what, strerror(errno));
}

static void path(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		ksft_exit_fail_msg("setup: path too long");
}

static void write_file(const char *p, const char *s, mode_t mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	must(fd >= 0, p);
	cr_write_all(fd, s, strlen(s), p);
	close(fd);
}

static int read_is(const char *p, const char *want)
{
	char buf[256] = "";
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n >= 0 && !strcmp(buf, want);
}

/* The mount tree as the init's mountinfo shows it, into a file or buffer. */
static ssize_t mountinfo(char *buf, size_t len)
{
	int fd = open("/proc/1/mountinfo", O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return n < 0 ? -1 : got;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * mountinfo without mount ids and device numbers, which change, its lines
 * sorted: a restart makes the external mounts first.
 */
static void normalize(char *in, char *out)
{
	char *save, *line, *lines[64];
	int n = 0;

	*out = 0;
	for (line = strtok_r(in, "\n", &save); line && n < 64; line = strtok_r(NULL, "\n", &save)) {
		char *p = line;
		for (int i = 0; i < 3 && p; i++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		if (p)
			lines[n++] = p;
	}
	qsort(lines, n, sizeof(lines[0]), cmp_lines);
	for (int i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
}

int main(void)
{
	static char before[16384], after[16384], nb[16384], na[16384];
	int sync_pipe[2], fd, datafd, status;
	char file[4600], c;
	struct stat st;
	struct statfs sfs;
	pid_t init;
	char *map;

	cr_init();
	ksft_print_header();
	ksft_set_plan(11);
	snprintf(dir, sizeof(dir), "%s", cr_dir());
	if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) < 0) {
		ksft_print_msg("unshare: %s\n", strerror(errno));
		return 4;
	}
	must(sethostname(HOSTNAME, strlen(HOSTNAME)) == 0, "sethostname");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private");

	/* A root of its own: / alone, and the host's /dev bound in. */
	path(newroot, sizeof(newroot), "root");
	must(mkdir(newroot, 0755) == 0, "mkdir root");
	must(mount("/", newroot, NULL, MS_BIND, NULL) == 0, "bind /");
	snprintf(file, sizeof(file), "%s/dev", newroot);
	must(mount("/dev", file, NULL, MS_BIND, NULL) == 0, "bind /dev");
	must(chdir(newroot) == 0, "chdir root");
	must(syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
	must(umount2(".", MNT_DETACH) == 0, "umount the old root");
	must(chdir(dir) == 0, "chdir");

	/* A tmpfs with things in it, and a file kept open and mapped. */
	path(tmp, sizeof(tmp), "t");
	must(mkdir(tmp, 0755) == 0, "mkdir t");
	must(mount("crsub-t", tmp, "tmpfs", MS_NOSUID, "size=1m,mode=0751") == 0, "mount tmpfs");
	snprintf(file, sizeof(file), "%s/sub", tmp);
	must(mkdir(file, 0700) == 0, "mkdir sub");
	snprintf(file, sizeof(file), "%s/sub/note", tmp);
	write_file(file, "note", 0640);
	must(chmod(file, 02640) == 0 && chown(file, 0, 5) == 0, "set-gid note");
	must(setxattr(file, "user.crsub", "xattr", 5, 0) == 0, "setxattr");
	snprintf(file, sizeof(file), "%s/link", tmp);
	must(symlink("sub/note", file) == 0, "symlink");
	snprintf(over, sizeof(over), "%s/hard", tmp);
	snprintf(file, sizeof(file), "%s/sub/note", tmp);
	must(link(file, over) == 0, "link");
	snprintf(file, sizeof(file), "%s/fifo", tmp);
	must(mkfifo(file, 0600) == 0, "mkfifo");
	snprintf(file, sizeof(file), "%s/data", tmp);
	datafd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	must(datafd >= 0, "open data");
	must(ftruncate(datafd, SIZE) == 0, "ftruncate");
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, datafd, 0);
	must(map != MAP_FAILED, "mmap");
	cr_fill(map, SIZE, 77);
	must(lseek(datafd, 100, SEEK_SET) == 100, "lseek");

	/* Another tmpfs over a directory of the first. */
	snprintf(over, sizeof(over), "%s/over", tmp);
	must(mkdir(over, 0755) == 0, "mkdir over");
	must(mount("crsub-over", over, "tmpfs", 0, "size=64k") == 0, "mount over");
	snprintf(file, sizeof(file), "%s/top", over);
	write_file(file, "top", 0644);

	/* A directory of the root bound elsewhere, read-only. */
	path(src, sizeof(src), "src");
	path(bind, sizeof(bind), "bind");
	must(mkdir(src, 0755) == 0 && mkdir(bind, 0755) == 0, "mkdir src, bind");
	snprintf(file, sizeof(file), "%s/hello", src);
	write_file(file, "hello", 0644);
	must(mount(src, bind, NULL, MS_BIND, NULL) == 0, "bind src");
	must(mount(NULL, bind, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0, "remount ro");

	/* A file bind mount bound over again: the second's mount point is
	 * the first mount's root, a file. */
	path(fbind, sizeof(fbind), "fbind");
	write_file(fbind, "root", 0644);
	snprintf(file, sizeof(file), "%s/hard", tmp);
	must(mount(file, fbind, NULL, MS_BIND, NULL) == 0, "bind a file");
	snprintf(file, sizeof(file), "%s/over/top", tmp);
	must(mount(file, fbind, NULL, MS_BIND, NULL) == 0, "bind a file over it");

	/* The init mounts proc for its pid namespace. */
	must(pipe(sync_pipe) == 0, "pipe");
	init = fork();
	must(init >= 0, "fork");
	if (init == 0) {
		close(sync_pipe[0]);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			_exit(1);
		cr_write_all(sync_pipe[1], "x", 1, "sync");
		for (;;)
			pause();
	}
	close(sync_pipe[1]);
	must(read(sync_pipe[0], &c, 1) == 1, "the init mounts proc");
	close(sync_pipe[0]);
	must(mountinfo(before, sizeof(before)) > 0, "read mountinfo");
	fd = open(cr_path("mountinfo.before"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	must(fd >= 0, "save mountinfo");
	cr_write_all(fd, before, strlen(before), "mountinfo.before");
	close(fd);
	ksft_print_msg("setup ok: init %d\n", init);

	cr_ready();
	cr_wait_sigterm();

	char buf[16] = "";
	int dfd = datafd;
	ksft_test_result(dfd >= 0 && lseek(dfd, 0, SEEK_CUR) == 100 && pread(dfd, buf, 8, 0) == 8 && cr_check(map, SIZE, 77) < 0 &&
				 !memcmp(buf, map, 8),
			 "the tmpfs file is open at its offset, mapped, with its contents");
	map[0] ^= 1;
	ksft_test_result(dfd >= 0 && pread(dfd, buf, 1, 0) == 1 && buf[0] == map[0], "its mapping is shared with the file");
	snprintf(file, sizeof(file), "%s/sub/note", tmp);
	char x[8] = "";
	ksft_test_result(read_is(file, "note") && stat(file, &st) == 0 && (st.st_mode & 07777) == 02640 && st.st_gid == 5 &&
				 st.st_nlink == 2 && getxattr(file, "user.crsub", x, sizeof(x)) == 5 && !memcmp(x, "xattr", 5),
			 "a file of the tmpfs is there, mode, owner, links and extended attribute");
	snprintf(file, sizeof(file), "%s/link", tmp);
	char target[64] = "";
	struct stat fst;
	snprintf(over, sizeof(over), "%s/fifo", tmp);
	ksft_test_result(readlink(file, target, sizeof(target) - 1) == 8 && !strcmp(target, "sub/note") && lstat(over, &fst) == 0 &&
				 S_ISFIFO(fst.st_mode) && statfs(tmp, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC && stat(tmp, &st) == 0 &&
				 (st.st_mode & 0777) == 0751,
			 "the tmpfs, its symbolic link and FIFO");
	snprintf(file, sizeof(file), "%s/over/top", tmp);
	ksft_test_result(read_is(file, "top"), "the tmpfs mounted over a directory of the first");
	snprintf(file, sizeof(file), "%s/hello", bind);
	snprintf(over, sizeof(over), "%s/new", bind);
	errno = 0;
	int rofd = open(over, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ksft_test_result(read_is(file, "hello") && rofd < 0 && errno == EROFS, "the bind mount shows its directory, read-only");
	ksft_test_result(read_is(fbind, "top"), "a file bind mount bound over another shows the top one");
	char link[64] = "";
	ksft_test_result(readlink("/proc/1/exe", link, sizeof(link) - 1) > 0 && kill(init, 0) == 0 && statfs("/proc", &sfs) == 0 &&
				 sfs.f_type == PROC_SUPER_MAGIC,
			 "proc shows the init as pid 1");
	char host[64] = "";
	gethostname(host, sizeof(host));
	ksft_test_result(!strcmp(host, HOSTNAME), "hostname is its namespace's");
	ssize_t n = mountinfo(after, sizeof(after));
	normalize(before, nb);
	normalize(after, na);
	if (n > 0 && strcmp(nb, na))
		ksft_print_msg("mountinfo before:\n%s# after:\n%s", nb, na);
	ksft_test_result(n > 0 && !strcmp(nb, na), "mountinfo reads as before");
	kill(init, SIGKILL);
	ksft_test_result(waitpid(init, &status, 0) == init, "the init is its child");
	ksft_finished();
}

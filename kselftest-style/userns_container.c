// SPDX-License-Identifier: MIT
/*
 * userns_container: a container in a user namespace of its own. The
 * subject clones the container's init into new user, pid, mount, UTS and
 * IPC namespaces and writes its maps from outside, a range as a container
 * runtime does (ids 0-65535 inside are 100000-165535 outside), setgroups
 * allowed; the init (target: checkpointed from the host) gives itself
 * groups, drops a capability from its bounding set and one from its
 * effective set, names its host, pivot_roots into a root of its own (a
 * directory with /usr, the subject's directories and a proc of its pid
 * namespace bound in), makes a tmpfs with a file it chowns to uid 1000, a
 * tmpfs with a file that another tmpfs mounted on it covers, a
 * file in a directory of the host it owns, and forks a child that becomes
 * uid and gid 1000 with groups 1000 and 2000, in a working directory of
 * its own (mode 0700) that the init then removes. Before and after the
 * restart it checks from inside: it is pid 1, root with the groups it set,
 * its uid_map, gid_map and setgroups as written, its capability sets, the
 * hostname, both files with their owners as seen inside, the child's ids
 * as its /proc shows them, its removed working directory, and that it may
 * still do what root of its namespace may (sethostname, chown). The .poke checks from outside: the
 * restored init's maps are the original's, its ids are those of the host
 * the maps say, the file in the host directory is owned by 100000.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include "cr.h"

#define HOSTNAME "crsub-uns"
#define MAP "0 100000 65536\n"
#define OUTSIDE 100000

enum { PID1 = 1, IDS = 2, GROUPS = 4, UIDMAP = 8, GIDMAP = 16, SETGROUPS = 32, CAPS = 64, UTS = 128,
       TMPFILE = 256, HOSTFILE = 512, CHILD = 1024, ADMIN = 2048, AWAY = 4096 };
#define ALL 8191

static char dir[3000], root[3100], exedir[3000];

static void must(int ok, const char *what)
{
	if (!ok)
		ksft_exit_fail_msg("setup: %s: %s", what, strerror(errno));
}

static int read_file(const char *p, char *buf, size_t len)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static void write_file(const char *p, const char *s)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	must(fd >= 0, p);
	cr_write_all(fd, s, strlen(s), p);
	close(fd);
}

/* A map as /proc prints it, read back as "a b c\n" lines. */
static int map_is(const char *p, const char *want)
{
	char buf[256], got[256] = "";
	unsigned a, b, c;
	int off = 0, n;
	char *s = buf;

	if (read_file(p, buf, sizeof(buf)) < 0)
		return 0;
	while (sscanf(s, "%u %u %u%n", &a, &b, &c, &n) == 3) {
		off += snprintf(got + off, sizeof(got) - off, "%u %u %u\n", a, b, c);
		s += n;
	}
	return !strcmp(got, want);
}

/* The value of field name ("Uid:") of a status file, blanks squeezed. */
static int status_is(const char *p, const char *name, const char *want)
{
	char buf[4096], *l;
	char got[256];

	if (read_file(p, buf, sizeof(buf)) < 0 || !(l = strstr(buf, name)))
		return 0;
	l += strlen(name);
	int n = 0;
	for (; *l && *l != '\n'; l++) {
		if (*l == ' ' || *l == '\t') {
			if (n && got[n - 1] != ' ')
				got[n++] = ' ';
			continue;
		}
		got[n++] = *l;
	}
	while (n && got[n - 1] == ' ')
		n--;
	got[n] = 0;
	return !strcmp(got, want);
}

static int file_is(const char *p, const char *want, uid_t uid, gid_t gid)
{
	char buf[64];
	struct stat st;

	return read_file(p, buf, sizeof(buf)) == 0 && !strcmp(buf, want) && stat(p, &st) == 0 && st.st_uid == uid &&
	       st.st_gid == gid;
}

static unsigned long long effective_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return 0;
	return d[0].effective | (unsigned long long)d[1].effective << 32;
}

static unsigned long long want_eff;
static pid_t child;

static int inspect(void)
{
	uid_t r, e, s;
	gid_t gr, ge, gs, groups[8];
	char p[64];
	int found = 0, n;

	if (getpid() == 1)
		found |= PID1;
	if (getresuid(&r, &e, &s) == 0 && !r && !e && !s && getresgid(&gr, &ge, &gs) == 0 && !gr && !ge && !gs)
		found |= IDS;
	n = getgroups(8, groups);
	if (n == 2 && groups[0] == 0 && groups[1] == 1000)
		found |= GROUPS;
	if (map_is("/proc/self/uid_map", MAP))
		found |= UIDMAP;
	if (map_is("/proc/self/gid_map", MAP))
		found |= GIDMAP;
	if (status_is("/proc/self/setgroups", "", "allow"))
		found |= SETGROUPS;
	/* Bounding set without CAP_SYS_BOOT, effective also without CAP_NET_RAW. */
	if (effective_caps() == want_eff && prctl(PR_CAPBSET_READ, CAP_SYS_BOOT) == 0 && prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN) == 1)
		found |= CAPS;
	char host[64] = "";
	if (gethostname(host, sizeof(host)) == 0 && !strcmp(host, HOSTNAME))
		found |= UTS;
	if (file_is("/data/owned", "tmpfs", 1000, 1000))
		found |= TMPFILE;
	char hostfile[3200];
	snprintf(hostfile, sizeof(hostfile), "%s/host/made", dir);
	if (file_is(hostfile, "host", 0, 0))
		found |= HOSTFILE;
	snprintf(p, sizeof(p), "/proc/%d/status", child);
	if (status_is(p, "Uid:", "1000 1000 1000 1000") && status_is(p, "Gid:", "1000 1000 1000 1000") &&
	    status_is(p, "Groups:", "1000 2000"))
		found |= CHILD;
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) == 0 && chown("/data/owned", 1000, 1000) == 0)
		found |= ADMIN;
	char cwd[256] = "";
	snprintf(p, sizeof(p), "/proc/%d/cwd", child);
	if (readlink(p, cwd, sizeof(cwd) - 1) > 0 && !strcmp(cwd, "/data/away (deleted)"))
		found |= AWAY;
	return found;
}

static void bind_in_flags(const char *src, const char *at, unsigned long flags);

static void bind_in(const char *src, const char *at)
{
	bind_in_flags(src, at, 0);
}

static void bind_in_flags(const char *src, const char *at, unsigned long flags)
{
	char dst[4096];

	snprintf(dst, sizeof(dst), "%s%s", root, at);
	for (char *s = dst + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		mkdir(dst, 0755);
		*s = '/';
	}
	must(mkdir(dst, 0755) == 0 || errno == EEXIST, dst);
	must(mount(src, dst, NULL, MS_BIND | flags, NULL) == 0, src);
}

static void container(int go)
{
	gid_t groups[] = { 0, 1000 };
	char c;

	if (read(go, &c, 1) != 1)
		_exit(120);
	close(go);
	must(setresgid(0, 0, 0) == 0 && setgroups(2, groups) == 0 && setresuid(0, 0, 0) == 0, "ids");
	cr_init();
	ksft_print_header();
	ksft_set_plan(14);
	must(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) == 0, "PR_CAPBSET_DROP");
	{
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		must(syscall(SYS_capget, &h, d) == 0, "capget");
		d[CAP_NET_RAW / 32].effective &= ~(1u << (CAP_NET_RAW % 32));
		must(syscall(SYS_capset, &h, d) == 0, "capset");
		want_eff = d[0].effective | (unsigned long long)d[1].effective << 32;
	}
	must(sethostname(HOSTNAME, strlen(HOSTNAME)) == 0, "sethostname");

	/* A root of its own: its directory, with what it runs from bound in. */
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "private");
	must(mount(root, root, NULL, MS_BIND, NULL) == 0, "bind root");
	bind_in("/usr", "/usr");
	for (const char *l = "bin\0lib\0lib64\0sbin\0"; *l; l += strlen(l) + 1) {
		char from[16], at[3200];
		snprintf(from, sizeof(from), "usr/%s", l);
		snprintf(at, sizeof(at), "%s/%s", root, l);
		must(symlink(from, at) == 0 || errno == EEXIST, at);
	}
	bind_in(exedir, exedir);
	bind_in(dir, dir);
	/* Its /dev/null and log, opened outside, are found again in it. */
	bind_in_flags("/dev", "/dev", MS_REC);
	char at[3200];
	snprintf(at, sizeof(at), "%s/proc", root);
	must(mkdir(at, 0555) == 0 || errno == EEXIST, at);
	/* Before the pivot: the kernel makes a proc only where one shows whole. */
	must(mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, "proc");
	snprintf(at, sizeof(at), "%s/data", root);
	must(mkdir(at, 0755) == 0 || errno == EEXIST, at);
	must(mount("ctr-data", at, "tmpfs", 0, "size=1m") == 0, "tmpfs");
	must(chdir(root) == 0 && syscall(SYS_pivot_root, ".", ".") == 0 && umount2(".", MNT_DETACH) == 0 && chdir("/") == 0, "pivot_root");

	write_file("/data/owned", "tmpfs");
	must(chown("/data/owned", 1000, 1000) == 0, "chown");
	/* A tmpfs with a file, covered by another mounted on it. */
	must(mkdir("/data/under", 0755) == 0 && mount("ctr-under", "/data/under", "tmpfs", 0, "size=1m") == 0, "under");
	write_file("/data/under/hidden", "covered");
	must(mount("ctr-over", "/data/under", "tmpfs", 0, "size=1m") == 0, "over");
	char hostfile[3200];
	snprintf(hostfile, sizeof(hostfile), "%s/host/made", dir);
	write_file(hostfile, "host");

	int ready[2];
	must(pipe(ready) == 0, "pipe");
	child = fork();
	must(child >= 0, "fork");
	if (child == 0) {
		gid_t g[] = { 1000, 2000 };
		sigset_t none;

		close(ready[0]);
		if (mkdir("/data/away", 0700) || chown("/data/away", 1000, 1000))
			_exit(122);
		/* Dumpable again after the change of ids, for the init to read its cwd. */
		if (setgroups(2, g) || setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000) ||
		    prctl(PR_SET_DUMPABLE, 1) || chdir("/data/away"))
			_exit(121);
		close(ready[1]);
		sigemptyset(&none);
		for (;;)
			sigsuspend(&none);
	}
	close(ready[1]);
	must(read(ready[0], &c, 1) == 0, "the child's ids");
	close(ready[0]);
	must(rmdir("/data/away") == 0, "removing the child's working directory");

	int before = inspect();
	if (before != ALL)
		ksft_exit_fail_msg("setup: the init finds %#x before the checkpoint", before);
	ksft_print_msg("setup ok: init, child %d\n", child);
	cr_ready();
	cr_wait_sigterm();

	int found = inspect();
	/* What the covering mount hid is there under it. */
	int hidden = umount2("/data/under", 0) == 0 && file_is("/data/under/hidden", "covered", 0, 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ksft_test_result(found & PID1, "the init is pid 1 in its namespace");
	ksft_test_result(found & IDS, "it is uid and gid 0 inside");
	ksft_test_result(found & GROUPS, "its groups are 0 and 1000 inside");
	ksft_test_result(found & UIDMAP, "its uid_map reads as written");
	ksft_test_result(found & GIDMAP, "its gid_map reads as written");
	ksft_test_result(found & SETGROUPS, "setgroups is allowed");
	ksft_test_result(found & CAPS, "its effective and bounding sets are as it made them");
	ksft_test_result(found & UTS, "its hostname is its namespace's");
	ksft_test_result(found & TMPFILE, "the file in its tmpfs is there, owned by 1000 inside");
	ksft_test_result(found & HOSTFILE, "the file it made in the host's directory is there, owned by root inside");
	ksft_test_result(found & CHILD, "its child is uid and gid 1000 with groups 1000 and 2000");
	ksft_test_result(found & ADMIN, "it is still root of its namespace (sethostname, chown)");
	ksft_test_result(found & AWAY, "its child's working directory, which the child owns and the init removed, is a removed one still");
	ksft_test_result(hidden, "a file of a tmpfs another tmpfs covers is there once the cover is unmounted");
	ksft_finished();
}

int main(void)
{
	int go[2], status;
	char p[3200];
	pid_t init;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", cr_dir()) >= sizeof(dir))
		ksft_exit_fail_msg("setup: CR_DIR too long");
	ssize_t n = readlink("/proc/self/exe", exedir, sizeof(exedir) - 1);
	must(n > 0, "readlink /proc/self/exe");
	exedir[n] = 0;
	*strrchr(exedir, '/') = 0;
	/* Root inside is 100000 outside: the directories it works in are its. */
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(p, sizeof(p), "%s/host", dir);
	must(chmod(dir, 0777) == 0, "chmod CR_DIR");
	{
		/* And the runner's directory of them (0700) traversable. */
		char up[3000];
		struct stat st;
		snprintf(up, sizeof(up), "%s", dir);
		*strrchr(up, '/') = 0;
		must(stat(up, &st) == 0 && chmod(up, (st.st_mode & 07777) | 0111) == 0, up);
	}
	must(mkdir(root, 0755) == 0 && chown(root, OUTSIDE, OUTSIDE) == 0, root);
	must(mkdir(p, 0755) == 0 && chown(p, OUTSIDE, OUTSIDE) == 0, p);
	must(pipe(go) == 0, "pipe");
	init = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, NULL, NULL, NULL, 0);
	if (init < 0) {
		ksft_print_msg("clone: %s\n", strerror(errno));
		return 4; /* skip: no user namespaces here */
	}
	if (init == 0) {
		close(go[1]);
		container(go[0]);
	}
	close(go[0]);
	snprintf(p, sizeof(p), "/proc/%d/uid_map", init);
	write_file(p, MAP);
	snprintf(p, sizeof(p), "/proc/%d/gid_map", init);
	write_file(p, MAP);
	/* What the host sees of them, for the .poke to compare. */
	for (const char *m = "uid_map\0gid_map\0"; *m; m += strlen(m) + 1) {
		char buf[256], before[3200];
		snprintf(p, sizeof(p), "/proc/%d/%s", init, m);
		must(read_file(p, buf, sizeof(buf)) == 0, p);
		snprintf(before, sizeof(before), "%s/%s.before", dir, m);
		write_file(before, buf);
	}
	snprintf(p, sizeof(p), "%d\n", init);
	write_file(cr_path("target.tmp"), p);
	must(rename(cr_path("target.tmp"), cr_path("target")) == 0, "target");
	cr_write_all(go[1], "g", 1, "go");
	close(go[1]);
	/* The init reports; checkpointed, it is gone (SIGKILL) and so are we. */
	if (waitpid(init, &status, 0) != init)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

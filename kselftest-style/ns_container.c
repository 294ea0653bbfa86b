// SPDX-License-Identifier: MIT
/*
 * ns_container: a process that made UTS, IPC, cgroup, pid and time
 * namespaces (unshare) and forked the init of the last two, checkpointed
 * from the host. The init checks from inside, before and after: it is pid
 * 1, the hostname and domain name are its namespace's, its cgroup is its
 * namespace's root, its clocks run 1000 s (monotonic) and 2000 s (boot
 * time) ahead of the parent's; the System V objects it made in its IPC
 * namespace (a segment it has attached, one it has not, a semaphore set, a
 * message queue) and a POSIX message queue are there with their ids, keys
 * and contents, and the id its next message queue gets is the one it set. The parent reports what the init found.
 */
#define _GNU_SOURCE
#include <mqueue.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include "cr.h"

#define HOSTNAME "crsub-ctr"
#define DOMAIN "crsub.test"
#define MONO_OFFSET 1000
#define BOOT_OFFSET 2000

enum { PID1 = 1, UTS = 2, CGROUP = 4, OFFSETS = 8, MONO = 16, BOOT = 32, PPID0 = 64,
       SHM = 128, SHM2 = 256, SEM = 512, MSG = 1024, MQ = 2048, NEXTID = 4096 };
#define ALL 8191

#define SHM_KEY 0x5eed0001
#define SHM2_KEY 0x5eed0002
#define SEM_KEY 0x5eed0003
#define MSG_KEY 0x5eed0004
#define MQ_NAME "/crsub-ns-container"

struct msg {
	long mtype;
	char text[16];
};

/* The init's System V and POSIX objects, made before the checkpoint. */
static int shmid, shm2id, semid, msqid;
static char *shm;
static mqd_t mq;

static void make_ipc(void)
{
	unsigned short vals[3] = { 11, 22, 33 };
	struct msg m1 = { 5, "hello" }, m2 = { 7, "world" };
	struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 32 };
	char *p;

	if ((shmid = shmget(SHM_KEY, 3 * 4096, IPC_CREAT | 0640)) < 0 || (shm = shmat(shmid, NULL, 0)) == (void *)-1)
		_exit(130);
	cr_fill(shm, 3 * 4096, 41);
	if ((shm2id = shmget(SHM2_KEY, 4096, IPC_CREAT | 0600)) < 0 || (p = shmat(shm2id, NULL, 0)) == (void *)-1)
		_exit(131);
	cr_fill(p, 4096, 42);
	shmdt(p);
	if ((semid = semget(SEM_KEY, 3, IPC_CREAT | 0604)) < 0 || semctl(semid, 0, SETALL, vals) < 0)
		_exit(132);
	if ((msqid = msgget(MSG_KEY, IPC_CREAT | 0620)) < 0 || msgsnd(msqid, &m1, 6, 0) < 0 || msgsnd(msqid, &m2, 6, 0) < 0)
		_exit(133);
	if ((mq = mq_open(MQ_NAME, O_CREAT | O_RDWR | O_NONBLOCK, 0600, &attr)) < 0 || mq_send(mq, "posix", 6, 3) < 0)
		_exit(134);
	int fd = open("/proc/sys/kernel/msg_next_id", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "4242", 4) != 4)
		_exit(135);
	close(fd);
}

/* The namespace's next message queue id (what it set, unused). */
static int next_msg_id(void)
{
	char buf[32] = "";
	int fd = open("/proc/sys/kernel/msg_next_id", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	if (fd >= 0)
		close(fd);
	return atoi(buf);
}

/* The objects as made; after the restart, their contents, taken. */
static int check_ipc(int after)
{
	int found = 0;
	unsigned short vals[3] = { 0 };
	struct msqid_ds mds;
	struct mq_attr attr;
	char *p;

	if (shmget(SHM_KEY, 0, 0) == shmid && cr_check(shm, 3 * 4096, 41) < 0)
		found |= SHM;
	if (shmget(SHM2_KEY, 0, 0) == shm2id && (p = shmat(shm2id, NULL, SHM_RDONLY)) != (void *)-1) {
		if (cr_check(p, 4096, 42) < 0)
			found |= SHM2;
		shmdt(p);
	}
	if (semget(SEM_KEY, 0, 0) == semid && semctl(semid, 0, GETALL, vals) == 0 && vals[0] == 11 && vals[1] == 22 && vals[2] == 33)
		found |= SEM;
	if (msgget(MSG_KEY, 0) == msqid && msgctl(msqid, IPC_STAT, &mds) == 0 && mds.msg_qnum == 2 && (mds.msg_perm.mode & 0777) == 0620) {
		struct msg a, b;
		if (!after)
			found |= MSG;
		else if (msgrcv(msqid, &a, sizeof(a.text), 0, IPC_NOWAIT) == 6 && msgrcv(msqid, &b, sizeof(b.text), 0, IPC_NOWAIT) == 6 &&
			 a.mtype == 5 && !strcmp(a.text, "hello") && b.mtype == 7 && !strcmp(b.text, "world"))
			found |= MSG;
	}
	if (next_msg_id() == 4242)
		found |= NEXTID;
	mqd_t byname = mq_open(MQ_NAME, O_RDONLY);
	if (byname >= 0)
		mq_close(byname);
	if (byname >= 0 && mq_getattr(mq, &attr) == 0 && attr.mq_curmsgs == 1 && attr.mq_maxmsg == 4 && attr.mq_msgsize == 32) {
		char buf[32];
		unsigned prio;
		if (!after)
			found |= MQ;
		else if (mq_receive(mq, buf, sizeof(buf), &prio) == 6 && prio == 3 && !strcmp(buf, "posix"))
			found |= MQ;
	}
	return found;
}

static long long now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec;
}

/* What the init finds in its namespaces; clocks against the parent's. */
static int inspect(long long mono, long long boot, int after)
{
	struct utsname u;
	char buf[512] = "";
	int fd, found = 0;
	ssize_t n;

	if (getpid() == 1)
		found |= PID1;
	if (getppid() == 0)
		found |= PPID0;
	if (uname(&u) == 0 && !strcmp(u.nodename, HOSTNAME) && !strcmp(u.domainname, DOMAIN))
		found |= UTS;
	if ((fd = open("/proc/self/cgroup", O_RDONLY)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		/* Every hierarchy's line ends in ":/": the namespace's root. */
		int all = n > 0;
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
			all &= strlen(l) >= 2 && !strcmp(l + strlen(l) - 2, ":/");
		if (all)
			found |= CGROUP;
	}
	if ((fd = open("/proc/self/timens_offsets", O_RDONLY)) >= 0) {
		long long ms, mn, bs, bn;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (sscanf(buf, "monotonic %lld %lld boottime %lld %lld", &ms, &mn, &bs, &bn) == 4 &&
		    ms == MONO_OFFSET && bs == BOOT_OFFSET && mn == 0 && bn == 0)
			found |= OFFSETS;
	}
	long long dm = now(CLOCK_MONOTONIC) - mono, db = now(CLOCK_BOOTTIME) - boot;
	if (dm >= MONO_OFFSET - 5 && dm <= MONO_OFFSET + 5)
		found |= MONO;
	if (db >= BOOT_OFFSET - 5 && db <= BOOT_OFFSET + 5)
		found |= BOOT;
	return found | check_ipc(after);
}

static void send_clocks(int fd)
{
	long long c[2] = { now(CLOCK_MONOTONIC), now(CLOCK_BOOTTIME) };

	cr_write_all(fd, c, sizeof(c), "clocks");
}

static int recv_clocks(int fd, long long c[2])
{
	return read(fd, c, 2 * sizeof(long long)) == 2 * sizeof(long long);
}

int main(void)
{
	int to_init[2], from_init[2], status, before;
	pid_t init;
	char offsets[64];

	cr_init();
	ksft_print_header();
	ksft_set_plan(13);
	if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWPID | CLONE_NEWTIME) < 0) {
		ksft_print_msg("unshare: %s\n", strerror(errno));
		return 4; /* skip: no namespaces here */
	}
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0 || setdomainname(DOMAIN, strlen(DOMAIN)) < 0)
		ksft_exit_fail_msg("setup: hostname: %s", strerror(errno));
	snprintf(offsets, sizeof(offsets), "monotonic %d 0\nboottime %d 0\n", MONO_OFFSET, BOOT_OFFSET);
	int fd = open("/proc/self/timens_offsets", O_WRONLY);
	if (fd < 0 || write(fd, offsets, strlen(offsets)) != (ssize_t)strlen(offsets))
		ksft_exit_fail_msg("setup: timens_offsets: %s", strerror(errno));
	close(fd);
	if (pipe(to_init) < 0 || pipe(from_init) < 0)
		ksft_exit_fail_msg("setup: pipe: %s", strerror(errno));
	init = fork();
	if (init < 0)
		ksft_exit_fail_msg("setup: fork: %s", strerror(errno));
	if (init == 0) {
		long long c[2];
		int found;

		setsid();
		close(to_init[1]);
		close(from_init[0]);
		make_ipc();
		/* Before: the parent's clocks now, and what it finds. */
		if (!recv_clocks(to_init[0], c))
			_exit(128);
		found = inspect(c[0], c[1], 0);
		cr_write_all(from_init[1], &found, sizeof(found), "found");
		/* After the restart: the parent's clocks then. */
		if (!recv_clocks(to_init[0], c))
			_exit(129);
		found = inspect(c[0], c[1], 1);
		cr_write_all(from_init[1], &found, sizeof(found), "found");
		_exit(0);
	}
	close(to_init[0]);
	close(from_init[1]);
	send_clocks(to_init[1]);
	if (read(from_init[0], &before, sizeof(before)) != sizeof(before))
		ksft_exit_fail_msg("setup: the init reports nothing");
	if (before != ALL)
		ksft_exit_fail_msg("setup: the init finds %#x before the checkpoint", before);
	ksft_print_msg("setup ok: init %d\n", init);

	cr_ready();
	cr_wait_sigterm();

	send_clocks(to_init[1]);
	int found = 0;
	if (read(from_init[0], &found, sizeof(found)) != sizeof(found))
		found = 0;
	if (waitpid(init, &status, 0) != init || !WIFEXITED(status) || WEXITSTATUS(status))
		ksft_print_msg("the init ended with status %#x\n", status);
	ksft_test_result(found & PID1, "the init is pid 1 in its namespace");
	ksft_test_result(found & PPID0, "its parent is outside its pid namespace");
	ksft_test_result(found & UTS, "hostname and domain name are its namespace's");
	ksft_test_result(found & CGROUP, "its cgroups are its namespace's root");
	ksft_test_result(found & OFFSETS, "its time namespace's offsets are as set");
	ksft_test_result(found & MONO, "its monotonic clock runs %d s ahead", MONO_OFFSET);
	ksft_test_result(found & BOOT, "its boot-time clock runs %d s ahead", BOOT_OFFSET);
	ksft_test_result(found & SHM, "the System V segment it has attached is there, same id and contents");
	ksft_test_result(found & SHM2, "the System V segment it has not attached is there, same id and contents");
	ksft_test_result(found & SEM, "its System V semaphore set is there, same id and values");
	ksft_test_result(found & MSG, "its System V message queue is there, same id, mode and messages");
	ksft_test_result(found & MQ, "its POSIX message queue is there by name, same attributes and message");
	ksft_test_result(found & NEXTID, "its next message queue id is the one it set");
	ksft_finished();
}

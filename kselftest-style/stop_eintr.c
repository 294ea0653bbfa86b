// SPDX-License-Identifier: MIT
/*
 * stop_eintr: checkpointed while its main thread waits in epoll_wait() on
 * an empty pipe and a second thread waits in semop() on a System V
 * semaphore. Both calls fail with EINTR when their thread is stopped and
 * continued (signal(7)), handler or not, and a ptrace freeze stops them so:
 * after restart neither may see an EINTR it would not have seen without the
 * checkpoint. The runner's poke (stop_eintr.poke) writes a byte into the
 * pipe through /proc/PID/fd/51; epoll_wait must report it, and the main
 * thread's semop(+1) must then wake the waiting thread's semop(-1) with 0.
 *
 *   fd 50: read end, watched by the epoll at fd 52; fd 51: write end
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/sem.h>

#include "cr.h"

#define RFD	50
#define WFD	51
#define EPFD	52

static int semid;
static int sem_ret = -2, sem_err;
static volatile pid_t waiter_tid;

static void *waiter(void *arg)
{
	struct sembuf down = { .sem_num = 0, .sem_op = -1 };

	(void)arg;
	waiter_tid = gettid();
	sem_ret = semop(semid, &down, 1);
	sem_err = errno;
	return NULL;
}

/* in_syscall says whether thread tid waits (state S) in system call nr. */
static int in_syscall(pid_t tid, long nr)
{
	char path[64], buf[256] = "";
	FILE *f;
	long got = -1;
	char state = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &got) != 1)
		got = -1;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');
		if (p && p[1] == ' ')
			state = p[2];
	}
	fclose(f);
	return got == nr && state == 'S';
}

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, got[2];
	struct sembuf up = { .sem_num = 0, .sem_op = 1 };
	pthread_t t;
	int p[2], ep, n, err, i;
	char c;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);

	if (pipe(p) || dup2(p[0], RFD) != RFD || dup2(p[1], WFD) != WFD)
		ksft_exit_fail_msg("pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	ep = epoll_create1(0);
	if (ep < 0 || dup2(ep, EPFD) != EPFD)
		ksft_exit_fail_msg("epoll_create1: %s", strerror(errno));
	close(ep);
	ev.data.fd = RFD;
	if (epoll_ctl(EPFD, EPOLL_CTL_ADD, RFD, &ev))
		ksft_exit_fail_msg("epoll_ctl: %s", strerror(errno));
	semid = semget(IPC_PRIVATE, 1, 0600);
	if (semid < 0)
		ksft_exit_fail_msg("semget: %s (skip without System V IPC)", strerror(errno));
	if (pthread_create(&t, NULL, waiter, NULL))
		ksft_exit_fail_msg("pthread_create");
	/* glibc's semop() is the semtimedop system call without a timeout. */
	for (i = 0; i < 500 && !(waiter_tid && (in_syscall(waiter_tid, SYS_semop) || in_syscall(waiter_tid, SYS_semtimedop))); i++)
		usleep(10000);
	if (i == 500)
		ksft_exit_fail_msg("setup: the waiting thread never blocked in semop");

	cr_ready_in(SYS_epoll_wait);
	n = epoll_wait(EPFD, got, 2, -1);
	err = errno;

	ksft_test_result(n == 1 && got[0].data.fd == RFD, "epoll_wait() reported the poked pipe (ret %d, errno %d)", n,
			 n < 0 ? err : 0);
	ksft_test_result(read(RFD, &c, 1) == 1 && c == 'x', "the poked byte is read");
	if (semop(semid, &up, 1))
		ksft_exit_fail_msg("semop(+1): %s", strerror(errno));
	pthread_join(t, NULL);
	ksft_test_result(sem_ret == 0, "semop(-1) in the other thread returned 0 (ret %d, errno %d)", sem_ret,
			 sem_ret < 0 ? sem_err : 0);
	semctl(semid, 0, IPC_RMID);
	cr_wait_sigterm();
	ksft_test_result(write(WFD, "y", 1) == 1 && read(RFD, &c, 1) == 1 && c == 'y', "pipe still works afterwards");
	ksft_finished();
}

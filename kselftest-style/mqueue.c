// SPDX-License-Identifier: MIT
/*
 * mqueue: POSIX message queues (mq_open). Queue A (named, maxmsg 8,
 * msgsize 64, mode 0640) holds three messages of two priorities and has
 * two descriptions, one non-blocking; queue U was unlinked with a message
 * in it; queue D is named and holds one message, and mqueue.prerestart
 * removes it between checkpoint and restart, so restart makes it again;
 * the process is registered on the empty queue N for SIGUSR1. After
 * restart every queue holds what it held, in priority order, with its
 * attributes and owner mode, the descriptions keep their flags, U has no
 * name, and a message sent to N brings SIGUSR1.
 *
 * The queue names carry the subject's pid: "/crsub-mq-{a,u,d,n}-PID".
 */
#define _GNU_SOURCE
#include <mqueue.h>
#include <signal.h>
#include <sys/stat.h>

#include "cr.h"

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

static char names[4][64];

static mqd_t make(int i, const char *tag, int maxmsg, mode_t mode)
{
	struct mq_attr attr = { .mq_maxmsg = maxmsg, .mq_msgsize = 64 };
	mqd_t q;

	snprintf(names[i], sizeof(names[i]), "/crsub-mq-%s-%d", tag, getpid());
	q = mq_open(names[i], O_RDWR | O_CREAT | O_EXCL, mode, &attr);
	if (q < 0)
		ksft_exit_fail_msg("mq_open %s: %s", names[i], strerror(errno));
	return q;
}

static int receive(mqd_t q, const char *want, unsigned int want_prio)
{
	char buf[64] = "";
	unsigned int prio = 0;
	ssize_t n = mq_receive(q, buf, sizeof(buf), &prio);

	return n == (ssize_t)strlen(want) && !memcmp(buf, want, n) && prio == want_prio;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	struct mq_attr attr;
	struct stat st;
	mqd_t a, a2, u, d, n;
	int ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	sigaction(SIGUSR1, &sa, NULL);

	a = make(0, "a", 8, 0640);
	if (mq_send(a, "low", 3, 1) || mq_send(a, "high", 4, 5) || mq_send(a, "high2", 5, 5))
		ksft_exit_fail_msg("mq_send: %s", strerror(errno));
	a2 = mq_open(names[0], O_RDONLY | O_NONBLOCK);
	u = make(1, "u", 4, 0600);
	d = make(2, "d", 4, 0600);
	n = make(3, "n", 4, 0600);
	if (a2 < 0 || mq_send(u, "ghost", 5, 2) || mq_unlink(names[1]) || mq_send(d, "again", 5, 3) || mq_notify(n, &sev))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	/* For mqueue.prerestart, which removes D. */
	{
		int fd = open(cr_path("dname"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

		cr_write_all(fd, names[2] + 1, strlen(names[2] + 1), "dname");
		close(fd);
	}

	cr_ready();
	cr_wait_sigterm();

	ok = mq_getattr(a, &attr) == 0 && attr.mq_maxmsg == 8 && attr.mq_msgsize == 64 && attr.mq_curmsgs == 3 &&
	     !(attr.mq_flags & O_NONBLOCK) && mq_getattr(a2, &attr) == 0 && (attr.mq_flags & O_NONBLOCK);
	ksft_test_result(ok, "A: attributes kept, one description blocking and one not");
	ksft_test_result(receive(a2, "high", 5) && receive(a2, "high2", 5) && receive(a, "low", 1) &&
				 mq_receive(a2, (char[64]){ 0 }, 64, NULL) < 0 && errno == EAGAIN,
			 "A: messages come in priority order, then the queue is empty");
	ksft_test_result(receive(u, "ghost", 2), "U: the unlinked queue kept its message");
	ksft_test_result(mq_open(names[1], O_RDONLY) < 0 && errno == ENOENT, "U: it has no name");
	ksft_test_result(receive(d, "again", 3) && mq_getattr(d, &attr) == 0 && attr.mq_maxmsg == 4,
			 "D: removed before the restart, made again with its message and attributes");
	{
		char path[64];

		/* The owner mode, through the queue's mqueue inode. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
		ok = stat(path, &st) == 0 && (st.st_mode & 0777) == 0640;
	}
	ksft_test_result(ok, "A: mode 0640 (%o)", st.st_mode & 0777);
	mq_send(n, "ping", 4, 0);
	for (int i = 0; i < 200 && !usr1; i++)
		usleep(5000);
	ksft_test_result(usr1, "N: a message into the empty queue brings SIGUSR1");
	mq_unlink(names[0]);
	mq_unlink(names[2]);
	mq_unlink(names[3]);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * signalfd: signalfds survive checkpoint/restart with their masks and
 * flags, and deliver signals raised after the restart.
 *
 *   fd 40: {SIGUSR1, SIGUSR2}, SFD_NONBLOCK; SIGUSR2 pending (blocked) at
 *          the checkpoint
 *   fd 41: {SIGRTMIN+1}, blocking
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/signalfd.h>

#include "cr.h"

#define USR	40
#define RT	41

static unsigned long long fdinfo_mask(int fd)
{
	char path[64], line[256];
	unsigned long long m = ~0ULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return m;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "sigmask: %llx", &m);
	fclose(f);
	return m;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void make(int fd, sigset_t *set, int flags)
{
	int s = signalfd(-1, set, flags);

	if (s < 0)
		ksft_exit_fail_msg("signalfd: %s", strerror(errno));
	if (dup2(s, fd) != fd)
		ksft_exit_fail_msg("dup2: %s", strerror(errno));
	close(s);
}

/* Read one siginfo from fd if there is one; its signo, or 0. */
static int next(int fd, struct signalfd_siginfo *si)
{
	memset(si, 0, sizeof(*si));
	if (!readable(fd) || read(fd, si, sizeof(*si)) != sizeof(*si))
		return 0;
	return (int)si->ssi_signo;
}

int main(void)
{
	unsigned long long m_usr, m_rt;
	struct signalfd_siginfo si;
	sigset_t usr, rt, all;
	union sigval val = { .sival_int = 42 };
	int fl_usr, fl_rt, sig, ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);

	sigemptyset(&usr);
	sigaddset(&usr, SIGUSR1);
	sigaddset(&usr, SIGUSR2);
	sigemptyset(&rt);
	sigaddset(&rt, SIGRTMIN + 1);
	all = usr;
	sigaddset(&all, SIGRTMIN + 1);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		ksft_exit_fail_msg("sigprocmask: %s", strerror(errno));
	make(USR, &usr, SFD_NONBLOCK);
	make(RT, &rt, 0);
	fl_usr = fcntl(USR, F_GETFL);
	fl_rt = fcntl(RT, F_GETFL);
	m_usr = fdinfo_mask(USR);
	m_rt = fdinfo_mask(RT);
	if (m_usr != ((1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGUSR2 - 1))) || m_rt != 1ULL << (SIGRTMIN + 1 - 1))
		ksft_exit_fail_msg("setup: masks %llx %llx", m_usr, m_rt);
	if (raise(SIGUSR2))
		ksft_exit_fail_msg("raise: %s", strerror(errno));
	if (!readable(USR) || readable(RT))
		ksft_exit_fail_msg("setup: SIGUSR2 not pending on fd %d", USR);
	ksft_print_msg("setup ok: masks %llx %llx, SIGUSR2 pending", m_usr, m_rt);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(fdinfo_mask(USR) == m_usr && fdinfo_mask(RT) == m_rt, "masks %llx %llx == %llx %llx",
			 fdinfo_mask(USR), fdinfo_mask(RT), m_usr, m_rt);
	ksft_test_result(fcntl(USR, F_GETFL) == fl_usr && fcntl(RT, F_GETFL) == fl_rt, "status flags %#x %#x == %#x %#x",
			 fcntl(USR, F_GETFL), fcntl(RT, F_GETFL), fl_usr, fl_rt);
	sig = next(USR, &si);
	ksft_test_result(sig == SIGUSR2, "the signal pending at the checkpoint reads back: %d (want %d)", sig, SIGUSR2);
	kill(getpid(), SIGUSR1);
	sig = next(USR, &si);
	ksft_test_result(sig == SIGUSR1 && si.ssi_pid == (uint32_t)getpid() && si.ssi_code == SI_USER,
			 "SIGUSR1 raised after restart: signo %d, pid %u, code %d", sig, si.ssi_pid, si.ssi_code);
	ksft_test_result(!readable(RT), "fd %d sees no signal outside its mask", RT);
	sigqueue(getpid(), SIGRTMIN + 1, val);
	sig = next(RT, &si);
	ksft_test_result(sig == SIGRTMIN + 1 && si.ssi_int == 42 && si.ssi_code == SI_QUEUE,
			 "SIGRTMIN+1 queued after restart: signo %d, value %d, code %d", sig, si.ssi_int, si.ssi_code);
	ok = read(USR, &si, sizeof(si)) < 0 && errno == EAGAIN;
	ksft_test_result(ok, "fd %d empty and O_NONBLOCK", USR);
	raise(SIGUSR2);
	ksft_test_result(next(RT, &si) == 0 && next(USR, &si) == SIGUSR2, "SIGUSR2 goes to fd %d only", USR);
	ksft_finished();
}

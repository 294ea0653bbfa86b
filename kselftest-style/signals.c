// SPDX-License-Identifier: MIT
/*
 * signals: signal dispositions, the blocked mask and a pending signal
 * survive checkpoint/restart.
 *
 *   SIGUSR1: SA_SIGINFO|SA_RESTART handler, sa_mask {SIGINT, SIGQUIT}
 *   SIGUSR2: plain handler; blocked and raised before the checkpoint, so it
 *            is pending; unblocking it after restart delivers it exactly once
 *   SIGHUP:  SIG_IGN
 */
#define _GNU_SOURCE
#include "cr.h"

static volatile sig_atomic_t usr1_count, usr2_count;
static volatile int usr1_signo, usr1_code, usr1_pid;
static sigset_t usr1_mask;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	usr1_count++;
	usr1_signo = si->si_signo;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	sigprocmask(SIG_BLOCK, NULL, &usr1_mask);
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_count++;
}

struct disp {
	int err;
	void *handler, *restorer;
	unsigned long flags, mask;
};

static struct disp before[NSIG], after[NSIG];

static void snapshot(struct disp *d)
{
	int sig;

	for (sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		memset(&d[sig], 0, sizeof(d[sig]));
		if (sigaction(sig, NULL, &sa)) {
			d[sig].err = errno;
			continue;
		}
		d[sig].handler = (void *)sa.sa_sigaction;
		d[sig].restorer = (void *)sa.sa_restorer;
		d[sig].flags = sa.sa_flags;
		memcpy(&d[sig].mask, &sa.sa_mask, sizeof(d[sig].mask));
	}
}

static int handler_mask_ok(void)
{
	return sigismember(&usr1_mask, SIGINT) == 1 && sigismember(&usr1_mask, SIGQUIT) == 1 &&
	       sigismember(&usr1_mask, SIGUSR1) == 1;
}

static int usr1_ok(void)
{
	return usr1_count == 1 && usr1_signo == SIGUSR1 && usr1_code == SI_TKILL &&
	       usr1_pid == getpid() && handler_mask_ok();
}

int main(void)
{
	struct sigaction sa;
	sigset_t set, mask_before, mask_after, pend;
	int sig, diffs = 0;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGQUIT);
	if (sigaction(SIGUSR1, &sa, NULL))
		ksft_exit_fail_msg("sigaction SIGUSR1: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL))
		ksft_exit_fail_msg("sigaction SIGUSR2: %s", strerror(errno));
	if (signal(SIGHUP, SIG_IGN) == SIG_ERR)
		ksft_exit_fail_msg("signal SIGHUP: %s", strerror(errno));

	/* Setup verification: the SIGUSR1 handler works as configured. */
	raise(SIGUSR1);
	if (!usr1_ok())
		ksft_exit_fail_msg("setup: SIGUSR1 handler count %d signo %d code %d pid %d mask %s",
				   usr1_count, usr1_signo, usr1_code, usr1_pid,
				   handler_mask_ok() ? "ok" : "wrong");
	usr1_count = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR2);
	sigpending(&pend);
	if (usr2_count || sigismember(&pend, SIGUSR2) != 1)
		ksft_exit_fail_msg("setup: SIGUSR2 not pending (count %d)", usr2_count);
	sigprocmask(SIG_BLOCK, NULL, &mask_before);
	snapshot(before);

	cr_ready();
	cr_wait_sigterm();

	snapshot(after);
	for (sig = 1; sig < NSIG; sig++) {
		if (!memcmp(&before[sig], &after[sig], sizeof(before[sig])))
			continue;
		diffs++;
		ksft_print_msg("signal %d: before handler %p flags %#lx mask %#lx err %d; after handler %p flags %#lx mask %#lx err %d",
			       sig, before[sig].handler, before[sig].flags, before[sig].mask, before[sig].err,
			       after[sig].handler, after[sig].flags, after[sig].mask, after[sig].err);
	}
	ksft_test_result(diffs == 0, "dispositions of all %d signals unchanged (%d differ)", NSIG - 1, diffs);

	sigprocmask(SIG_BLOCK, NULL, &mask_after);
	ksft_test_result(!memcmp(&mask_before, &mask_after, 8), "blocked mask unchanged (%#lx)",
			 *(unsigned long *)&mask_after);

	sigpending(&pend);
	ksft_test_result(sigismember(&pend, SIGUSR2) == 1 && usr2_count == 0,
			 "SIGUSR2 still pending, not yet delivered");

	sigprocmask(SIG_UNBLOCK, &set, NULL);
	sigpending(&pend);
	ksft_test_result(usr2_count == 1 && sigismember(&pend, SIGUSR2) == 0,
			 "unblocking SIGUSR2 delivered it exactly once (count %d)", usr2_count);

	raise(SIGUSR1);
	ksft_test_result(usr1_ok(), "SIGUSR1 SA_SIGINFO handler: count %d signo %d code %d pid %d",
			 usr1_count, usr1_signo, usr1_code, usr1_pid);
	ksft_test_result(handler_mask_ok(), "sa_mask {SIGINT,SIGQUIT} applied in the handler");
	ksft_finished();
}

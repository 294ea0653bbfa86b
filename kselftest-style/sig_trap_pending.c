// SPDX-License-Identifier: MIT
/*
 * sig_trap_pending: a SIGTRAP that is blocked and pending, for the thread
 * (raise) and for the process (kill), with a handler installed. The
 * checkpoint injects calls into the process, and a batch of them ends in a
 * trap of its own: a pending SIGTRAP must keep it off that trap, or the
 * pending one is taken for the batch's and lost, or the handler is reset.
 * After restart SIGTRAP is still pending and its handler still installed;
 * unblocking it runs the handler once for each queue.
 */
#include "cr.h"

static volatile sig_atomic_t traps;
static volatile int trap_code;

static void on_trap(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	traps++;
	trap_code = si->si_code;
}

int main(void)
{
	struct sigaction sa, now;
	sigset_t set, pend;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGTRAP, &sa, NULL))
		ksft_exit_fail_msg("sigaction SIGTRAP: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGTRAP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGTRAP);
	kill(getpid(), SIGTRAP);
	sigpending(&pend);
	if (traps || sigismember(&pend, SIGTRAP) != 1)
		ksft_exit_fail_msg("setup: SIGTRAP not pending (traps %d)", traps);

	cr_ready();
	cr_wait_sigterm();

	sigpending(&pend);
	ksft_test_result(sigismember(&pend, SIGTRAP) == 1 && traps == 0,
			 "SIGTRAP still pending, not delivered (traps %d)", traps);
	memset(&now, 0, sizeof(now));
	sigaction(SIGTRAP, NULL, &now);
	ksft_test_result(now.sa_sigaction == on_trap && (now.sa_flags & SA_SIGINFO),
			 "SIGTRAP handler still installed (flags %#x)", (unsigned)now.sa_flags);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	sigpending(&pend);
	ksft_test_result(traps == 2 && sigismember(&pend, SIGTRAP) == 0,
			 "unblocking SIGTRAP ran the handler for the thread's and the process's (traps %d, last code %d)",
			 traps, trap_code);
	ksft_finished();
}

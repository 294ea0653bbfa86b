// SPDX-License-Identifier: MIT
/*
 * sigaltstack: an alternate signal stack survives checkpoint/restart:
 * sigaltstack() reports the same area, and a SA_ONSTACK handler runs on it.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define ALT_SIZE	(256UL << 10)

static char *alt;
static volatile sig_atomic_t calls;
static volatile uintptr_t handler_sp;
static volatile int handler_onstack;

static void on_usr1(int sig)
{
	volatile char here;
	stack_t cur;

	(void)sig;
	calls++;
	handler_sp = (uintptr_t)&here;
	handler_onstack = !sigaltstack(NULL, &cur) && (cur.ss_flags & SS_ONSTACK);
}

static int ran_on_alt(void)
{
	return handler_onstack && handler_sp >= (uintptr_t)alt &&
	       handler_sp < (uintptr_t)alt + ALT_SIZE;
}

int main(void)
{
	stack_t ss, before, now;
	struct sigaction sa;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s", strerror(errno));
	ss.ss_sp = alt;
	ss.ss_size = ALT_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		ksft_exit_fail_msg("sigaltstack: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	if (sigaction(SIGUSR1, &sa, NULL))
		ksft_exit_fail_msg("sigaction: %s", strerror(errno));

	raise(SIGUSR1);
	if (calls != 1 || !ran_on_alt())
		ksft_exit_fail_msg("setup: handler calls %d sp %#lx alt %p..+%#lx", calls,
				   (unsigned long)handler_sp, (void *)alt, ALT_SIZE);
	if (sigaltstack(NULL, &before) || before.ss_sp != alt || before.ss_size != ALT_SIZE ||
	    before.ss_flags != 0)
		ksft_exit_fail_msg("setup: sigaltstack query wrong");
	calls = 0;
	handler_sp = 0;
	handler_onstack = 0;

	cr_ready();
	cr_wait_sigterm();

	memset(&now, 0, sizeof(now));
	sigaltstack(NULL, &now);
	ksft_test_result(now.ss_sp == before.ss_sp && now.ss_size == before.ss_size &&
			 now.ss_flags == before.ss_flags,
			 "sigaltstack: sp %p size %#zx flags %d (before %p %#zx %d)", now.ss_sp,
			 now.ss_size, now.ss_flags, before.ss_sp, before.ss_size, before.ss_flags);
	raise(SIGUSR1);
	ksft_test_result(calls == 1, "SA_ONSTACK handler ran once (%d)", calls);
	ksft_test_result(ran_on_alt(), "handler ran on the alternate stack (sp %#lx, onstack %d)",
			 (unsigned long)handler_sp, handler_onstack);
	ksft_finished();
}

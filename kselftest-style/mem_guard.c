// SPDX-License-Identifier: MIT
/*
 * mem_guard: guard pages (madvise(MADV_GUARD_INSTALL), Linux 6.13+) hold
 * nothing and fault on any access. A checkpoint leaves them out of the
 * image; after restart the same pages fault again and every other page of
 * the region keeps its contents.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include "cr.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PS	4096UL
#define PAGES	256UL

static sigjmp_buf jump;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jump, 1);
}

/* guard says whether page i of the region is made a guard page. */
static int guard(unsigned long i)
{
	return i == 0 || (i >= 100 && i < 104) || i == PAGES - 1;
}

/* faults says whether reading at p faults. */
static int faults(volatile unsigned char *p)
{
	if (sigsetjmp(jump, 1) == 0) {
		(void)*p;
		return 0;
	}
	return 1;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER };
	unsigned long bad_fault = 0, bad_contents = 0, i;
	unsigned char *p;

	cr_init();
	ksft_print_header();
	ksft_set_plan(2);

	p = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s", strerror(errno));
	for (i = 0; i < PAGES; i++)
		memset(p + i * PS, (int)(i % 251) + 1, PS);
	for (i = 0; i < PAGES; i++)
		if (guard(i) && madvise(p + i * PS, PS, MADV_GUARD_INSTALL)) {
			if (errno == EINVAL)
				ksft_exit_skip("MADV_GUARD_INSTALL: %s (before Linux 6.13)\n", strerror(errno));
			ksft_exit_fail_msg("MADV_GUARD_INSTALL: %s", strerror(errno));
		}
	if (sigaction(SIGSEGV, &sa, NULL))
		ksft_exit_fail_msg("sigaction: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	for (i = 0; i < PAGES; i++) {
		volatile unsigned char *at = p + i * PS + PS / 2;

		if (faults(at) != guard(i)) {
			bad_fault++;
			continue;
		}
		if (!guard(i) && (at[0] != (unsigned char)(i % 251 + 1) || p[i * PS] != at[0]))
			bad_contents++;
	}
	ksft_test_result(bad_fault == 0, "exactly the guard pages fault after restart (%lu pages wrong)", bad_fault);
	ksft_test_result(bad_contents == 0, "the other pages keep their contents (%lu pages wrong)", bad_contents);
	ksft_finished();
}

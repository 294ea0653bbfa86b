// SPDX-License-Identifier: MIT
/*
 * page_server: a live migration through CRIU's command line
 * (page_server.checkpoint): a pre-dump to a page server, then the dump,
 * incremental to it, to a second page server told of the first's image; the
 * restart is made from the second server's directory, so every page the
 * subject holds comes back through the servers' chain. The subject checks
 * its memory patterns and its pid.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define PAGE	4096UL
#define PAGES	2048UL		/* 8 MiB */

int main(void)
{
	unsigned char *mem;
	pid_t me;

	cr_init();
	ksft_print_header();
	ksft_set_plan(2);
	mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		ksft_exit_fail_msg("setup: mmap: %s\n", strerror(errno));
	for (unsigned long pg = 0; pg < PAGES; pg++)
		cr_fill(mem + pg * PAGE, PAGE, 7 + pg);
	me = getpid();

	cr_ready();
	cr_wait_sigterm();

	long bad = -1;
	for (unsigned long pg = 0; pg < PAGES && bad < 0; pg++)
		if (cr_check(mem + pg * PAGE, PAGE, 7 + pg) >= 0)
			bad = (long)(pg * PAGE);
	ksft_test_result(bad < 0, "8 MiB of patterns came back through the page servers (first bad byte %ld)", bad);
	ksft_test_result(getpid() == me, "same pid");
	ksft_finished();
}

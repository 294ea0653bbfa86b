// SPDX-License-Identifier: MIT
/*
 * mem_prot_none: pages written and then made PROT_NONE (scattered single
 * pages of a written region, as a garbage collector or a guard-by-mprotect
 * scheme leaves them) or write-only keep their contents: the checkpoint
 * cannot read them with process_vm_readv, which keeps to the protection.
 * After restart they are still PROT_NONE or write-only (/proc/self/maps)
 * and, made readable again, hold what was written. mem_prot_none_precopy
 * is the same checkpointed with --pre-copy.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define PG 4096
#define NPG 256

static const int none[] = { 0, 7, 100, 101, 255 };
#define NNONE (sizeof(none) / sizeof(none[0]))
static const int wronly[] = { 50, 51, 200 };
#define NWRONLY (sizeof(wronly) / sizeof(wronly[0]))

/* perms gives the permissions /proc/self/maps shows for the VMA holding addr. */
static int perms(const char *addr, char out[5])
{
	char line[512];
	unsigned long start, end;
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%lx-%lx %4s", &start, &end, out) == 3 && start <= (unsigned long)addr && (unsigned long)addr < end;
	fclose(f);
	return found;
}

int main(void)
{
	char *p, pm[5];
	size_t i;
	int ok = 1;

	cr_init();
	ksft_print_header();
	ksft_set_plan(2);
	p = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ksft_exit_fail_msg("setup: mmap: %s", strerror(errno));
	cr_fill(p, NPG * PG, 7);
	for (i = 0; i < NNONE; i++)
		if (mprotect(p + none[i] * PG, PG, PROT_NONE))
			ksft_exit_fail_msg("setup: mprotect: %s", strerror(errno));
	for (i = 0; i < NWRONLY; i++)
		if (mprotect(p + wronly[i] * PG, PG, PROT_WRITE))
			ksft_exit_fail_msg("setup: mprotect: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	for (i = 0; i < NNONE; i++)
		ok &= perms(p + none[i] * PG, pm) && !strcmp(pm, "---p");
	for (i = 0; i < NWRONLY; i++)
		ok &= perms(p + wronly[i] * PG, pm) && !strcmp(pm, "-w-p");
	ksft_test_result(ok, "the PROT_NONE and write-only pages are still so");
	if (mprotect(p, NPG * PG, PROT_READ))
		ksft_exit_fail_msg("mprotect: %s", strerror(errno));
	ksft_test_result(cr_check(p, NPG * PG, 7) < 0, "every page, the PROT_NONE and write-only ones too, holds what was written");
	ksft_finished();
}

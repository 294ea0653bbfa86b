// SPDX-License-Identifier: MIT
/*
 * madvise_flags: what madvise(2) and mlock(2) set on memory survives
 * checkpoint/restart: smaps shows the same VmFlags on each region, and
 * they still act: a child forked after the restart does not get the
 * MADV_DONTFORK region and finds the MADV_WIPEONFORK one zeroed.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>

#include "cr.h"

#define LEN	(64UL << 10)

static struct {
	const char *what, *flag;
	int advice; /* -1: mlock */
	unsigned char *at;
} regions[] = {
	{ "MADV_DONTFORK", "dc", MADV_DONTFORK, NULL },
	{ "MADV_WIPEONFORK", "wf", MADV_WIPEONFORK, NULL },
	{ "MADV_DONTDUMP", "dd", MADV_DONTDUMP, NULL },
	{ "mlock", "lo", -1, NULL },
};
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

/* has_flag says whether smaps shows flag in VmFlags of the VMA at addr. */
static int has_flag(unsigned char *addr, const char *flag)
{
	char line[512];
	unsigned long start, end;
	int in = 0, found = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in = start == (unsigned long)addr;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			char *tok = strtok(line + 8, " \n");

			for (; tok; tok = strtok(NULL, " \n"))
				found |= !strcmp(tok, flag);
			in = 0;
		}
	}
	fclose(f);
	return found;
}

int main(void)
{
	int status;
	pid_t child;

	cr_init();
	ksft_print_header();
	ksft_set_plan(NREGIONS + 2);

	for (size_t i = 0; i < NREGIONS; i++) {
		/* A guard page between regions keeps them apart in smaps. */
		unsigned char *p = mmap(NULL, LEN + 4096, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || mprotect(p + LEN, 4096, PROT_NONE))
			ksft_exit_fail_msg("mmap: %s", strerror(errno));
		memset(p, 0x5a, LEN);
		if (regions[i].advice < 0 ? mlock(p, LEN) : madvise(p, LEN, regions[i].advice))
			ksft_exit_fail_msg("%s: %s", regions[i].what, strerror(errno));
		if (!has_flag(p, regions[i].flag))
			ksft_exit_fail_msg("setup: smaps lacks %s after %s", regions[i].flag, regions[i].what);
		regions[i].at = p;
	}

	cr_ready();
	cr_wait_sigterm();

	for (size_t i = 0; i < NREGIONS; i++)
		ksft_test_result(has_flag(regions[i].at, regions[i].flag) && regions[i].at[0] == 0x5a,
				 "%s: VmFlags has %s, contents kept", regions[i].what, regions[i].flag);
	child = fork();
	if (child == 0) {
		unsigned char vec;
		/* mincore fails with ENOMEM on a range that is not mapped. */
		int gone = mincore(regions[0].at, 4096, &vec) && errno == ENOMEM;
		int wiped = regions[1].at[0] == 0 && regions[1].at[LEN - 1] == 0;

		_exit((gone ? 0 : 1) | (wiped ? 0 : 2));
	}
	if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status))
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	ksft_test_result(!(WEXITSTATUS(status) & 1), "a child forked after restart lacks the MADV_DONTFORK region");
	ksft_test_result(!(WEXITSTATUS(status) & 2), "a child forked after restart finds the MADV_WIPEONFORK region zeroed");
	ksft_finished();
}

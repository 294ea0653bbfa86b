// SPDX-License-Identifier: MIT
/*
 * mem_map_flags: the mmap(2) flags and madvise(2) advice that only smaps
 * shows survive checkpoint/restart: a MAP_NORESERVE mapping four times the
 * size of memory (which without the flag the restart could not map), a
 * MAP_DROPPABLE one (its pages are not kept, as CRIU does not keep them:
 * the kernel may drop them any time), MADV_SEQUENTIAL and MADV_RANDOM; and
 * a read-only MAP_SHARED mapping of a file opened O_RDWR, which the program
 * may still mprotect writable; a MAP_GROWSDOWN mapping that is no stack,
 * which must still grow when touched below; and prctl(PR_SET_THP_DISABLE),
 * which belongs to the address space and leaves the mappings' VmFlags as
 * they were.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/prctl.h>

#include "cr.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

#define LEN (64UL << 10)

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

/* A guard page after each region keeps it apart from the next in smaps. */
static unsigned char *region(size_t len, int flags)
{
	unsigned char *p = mmap(NULL, len + 4096, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p + len, 4096, PROT_NONE))
		ksft_exit_fail_msg("mprotect: %s", strerror(errno));
	return p;
}

int main(void)
{
	size_t huge = (size_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) * 4;
	unsigned char *nr, *seq, *rnd, *drop, *ro, *gd, b = 0;
	volatile unsigned char *below;
	int fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(7);
	fd = open(cr_path("shared"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4096))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED)
		ksft_exit_fail_msg("setup: mmap: %s", strerror(errno));
	close(fd);
	huge = (huge + (1UL << 30) - 1) & ~((1UL << 30) - 1);
	nr = region(huge, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
	seq = region(LEN, MAP_PRIVATE | MAP_ANONYMOUS);
	rnd = region(LEN, MAP_PRIVATE | MAP_ANONYMOUS);
	drop = region(LEN, MAP_DROPPABLE | MAP_ANONYMOUS);
	if (!nr || !seq || !rnd)
		ksft_exit_fail_msg("setup: mmap: %s", strerror(errno));
	if (madvise(seq, LEN, MADV_SEQUENTIAL) || madvise(rnd, LEN, MADV_RANDOM))
		ksft_exit_fail_msg("setup: madvise: %s", strerror(errno));
	cr_fill(nr, 4096, 1);
	cr_fill(nr + huge - 4096, 4096, 2);
	cr_fill(seq, LEN, 3);
	cr_fill(rnd, LEN, 4);
	if (drop)
		drop[0] = 0x5a;
	/* One page at the top of a hole larger than the stack guard gap. */
	gd = mmap(NULL, 8UL << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (gd == MAP_FAILED || munmap(gd, 8UL << 20))
		ksft_exit_fail_msg("setup: a hole: %s", strerror(errno));
	gd = mmap(gd + (8UL << 20) - 4096, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN,
		  -1, 0);
	if (gd == MAP_FAILED)
		ksft_exit_fail_msg("setup: MAP_GROWSDOWN: %s", strerror(errno));
	cr_fill(gd, 4096, 5);
	if (!has_flag(gd, "gd"))
		ksft_exit_fail_msg("setup: smaps lacks gd");
	if (!has_flag(nr, "nr") || !has_flag(seq, "sr") || !has_flag(rnd, "rr") || (drop && !has_flag(drop, "dp")))
		ksft_exit_fail_msg("setup: smaps lacks a flag");
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) || prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		ksft_exit_fail_msg("setup: PR_SET_THP_DISABLE: %s", strerror(errno));
	if (has_flag(seq, "nh"))
		ksft_exit_fail_msg("setup: PR_SET_THP_DISABLE set nh on a mapping (kernel before 6.11?)");
	ksft_print_msg("MAP_NORESERVE region of %zu GiB", huge >> 30);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(has_flag(nr, "nr") && cr_check(nr, 4096, 1) < 0 && cr_check(nr + huge - 4096, 4096, 2) < 0,
			 "MAP_NORESERVE: VmFlags has nr, contents kept at both ends");
	ksft_test_result(has_flag(seq, "sr") && cr_check(seq, LEN, 3) < 0, "MADV_SEQUENTIAL: VmFlags has sr, contents kept");
	ksft_test_result(has_flag(rnd, "rr") && cr_check(rnd, LEN, 4) < 0, "MADV_RANDOM: VmFlags has rr, contents kept");
	if (drop)
		ksft_test_result(has_flag(drop, "dp") && has_flag(drop, "wf") && (drop[0] == 0 || drop[0] == 0x5a),
				 "MAP_DROPPABLE: VmFlags has dp (and wf), its page kept or dropped");
	else
		ksft_test_result_skip("MAP_DROPPABLE: not supported by this kernel");
	if (mprotect(ro, 4096, PROT_READ | PROT_WRITE) == 0) {
		ro[0] = 0x42;
		fd = open(cr_path("shared"), O_RDONLY);
		if (fd < 0 || pread(fd, &b, 1, 0) != 1)
			b = 0;
	}
	ksft_test_result(b == 0x42, "a read-only shared mapping of a file opened O_RDWR can be made writable");
	below = gd - 4096;
	*below = 0x17; /* SIGSEGV unless the mapping grows */
	ksft_test_result(has_flag(gd - 4096, "gd") && *below == 0x17 && cr_check(gd, 4096, 5) < 0,
			 "MAP_GROWSDOWN: VmFlags has gd, contents kept, grows when touched below");
	ksft_test_result(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 && !has_flag(seq, "nh"),
			 "PR_SET_THP_DISABLE kept for the address space, no nh on its mappings");
	ksft_finished();
}

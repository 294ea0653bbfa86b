// SPDX-License-Identifier: MIT
/*
 * mem_snapshot: checkpointed with --leave-running (no copy-on-write), the
 * memory is read by a reader per core while the process is frozen, into
 * the image file's room (mem_snapshot.checkpoint) or a memory file the image
 * is written from after the thaw (mem_snapshot_memory, to a pipe), zero
 * pages left out. A 64 MiB private
 * region (several chunks of a pages record), every fifth page zeros and the
 * others a pattern of their index, and an 8 MiB shared anonymous region
 * (read from its object) must come back page for page.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define PAGE		4096UL
#define PRIVATE_LEN	(64UL << 20)
#define SHARED_LEN	(8UL << 20)

static uint64_t word(size_t page, size_t k, uint64_t salt)
{
	return (page + 1) * 0x9e3779b97f4a7c15ULL + k * 0xd1b54a32d192ed03ULL + salt;
}

static void fill(uint64_t *r, size_t len, uint64_t salt)
{
	size_t p, k;

	for (p = 0; p < len / PAGE; p++)
		for (k = 0; k < PAGE / 8; k++)
			r[p * (PAGE / 8) + k] = p % 5 == 0 ? 0 : word(p, k, salt);
}

/* The first page that differs from what fill wrote, or -1. */
static long first_bad_page(const uint64_t *r, size_t len, uint64_t salt)
{
	size_t p, k;

	for (p = 0; p < len / PAGE; p++)
		for (k = 0; k < PAGE / 8; k++)
			if (r[p * (PAGE / 8) + k] != (p % 5 == 0 ? 0 : word(p, k, salt)))
				return (long)p;
	return -1;
}

int main(void)
{
	uint64_t *priv, *shared;
	long bad;

	cr_init();
	ksft_print_header();
	ksft_set_plan(2);

	priv = mmap(NULL, PRIVATE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, SHARED_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (priv == MAP_FAILED || shared == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s", strerror(errno));
	fill(priv, PRIVATE_LEN, 1);
	fill(shared, SHARED_LEN, 2);
	ksft_print_msg("setup ok: %lu MiB private at %p, %lu MiB shared at %p, every fifth page zeros",
		       PRIVATE_LEN >> 20, (void *)priv, SHARED_LEN >> 20, (void *)shared);

	cr_ready();
	cr_wait_sigterm();

	bad = first_bad_page(priv, PRIVATE_LEN, 1);
	ksft_test_result(bad < 0, "private region page for page (first bad page %ld)", bad);
	bad = first_bad_page(shared, SHARED_LEN, 2);
	ksft_test_result(bad < 0, "shared region page for page (first bad page %ld)", bad);
	ksft_finished();
}

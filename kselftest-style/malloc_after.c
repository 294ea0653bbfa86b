// SPDX-License-Identifier: MIT
/*
 * malloc_after: the restored process can still grow its memory: malloc of
 * 256 MiB (mmap'ed by glibc) plus many small brk-heap allocations, sbrk()
 * growing the break in place, and fresh anonymous mmaps.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define BIG	(256UL << 20)
#define SMALL_N	4096
#define SBRK_LEN (64UL << 10)

static void *small[SMALL_N];

/* Write a word in every page and read them back. */
static int touch(unsigned char *p, size_t len, uint64_t seed)
{
	size_t off;

	for (off = 0; off < len; off += 4096)
		*(uint64_t *)(p + off) = cr_pattern64(seed, off);
	for (off = 0; off < len; off += 4096)
		if (*(uint64_t *)(p + off) != cr_pattern64(seed, off))
			return 0;
	return 1;
}

static int small_allocs(void)
{
	int i, ok = 1;

	for (i = 0; i < SMALL_N; i++) {
		small[i] = malloc(1000);
		if (!small[i])
			return 0;
		cr_fill(small[i], 1000, i);
	}
	for (i = 0; i < SMALL_N; i++) {
		ok &= cr_check(small[i], 1000, i) < 0;
		free(small[i]);
	}
	return ok;
}

static int sbrk_grows(void)
{
	unsigned char *old = sbrk(0), *got, *now;
	int ok;

	got = sbrk(SBRK_LEN);
	if (got == (void *)-1)
		return 0;
	now = sbrk(0);
	ok = got == old && now == old + SBRK_LEN && (void *)syscall(SYS_brk, 0) == (void *)now &&
	     touch(got, SBRK_LEN, 3);
	return sbrk(-(intptr_t)SBRK_LEN) != (void *)-1 && ok;
}

static int mmap_works(void)
{
	size_t len = 16UL << 20;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ok;

	if (p == MAP_FAILED)
		return 0;
	ok = touch(p, len, 4);
	return !munmap(p, len) && ok;
}

int main(void)
{
	unsigned char *pre, *big;
	void *brk_before, *kbrk_before;
	int ok;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);

	/* Some heap state before the checkpoint, and setup verification. */
	pre = malloc(1 << 20);
	if (!pre || !touch(pre, 1 << 20, 1))
		ksft_exit_fail_msg("setup: malloc 1 MiB failed");
	if (!small_allocs() || !sbrk_grows() || !mmap_works())
		ksft_exit_fail_msg("setup: small allocs / sbrk / mmap failed before checkpoint");
	brk_before = sbrk(0);
	kbrk_before = (void *)syscall(SYS_brk, 0);
	if (brk_before != kbrk_before)
		ksft_exit_fail_msg("setup: sbrk(0) %p != brk(0) %p", brk_before, kbrk_before);
	ksft_print_msg("setup ok: brk %p", brk_before);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(sbrk(0) == brk_before && (void *)syscall(SYS_brk, 0) == kbrk_before,
			 "program break unchanged (sbrk %p, kernel %p, before %p)", sbrk(0),
			 (void *)syscall(SYS_brk, 0), brk_before);
	big = malloc(BIG);
	ok = big && touch(big, BIG, 2);
	free(big);
	ksft_test_result(ok, "malloc(256 MiB) and touch every page");
	ksft_test_result(small_allocs(), "%d small mallocs on the brk heap", SMALL_N);
	ksft_test_result(sbrk_grows(), "sbrk(+64 KiB) grows the break in place");
	ksft_test_result(mmap_works() && touch(pre, 1 << 20, 5), "mmap 16 MiB works, old heap block writable");
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * mem_precopy: checkpointed with --pre-copy while a thread keeps rewriting
 * random pages of a 64 MiB region. Each page holds its generation and a fill
 * derived from it; the generations live in an array of their own, written
 * at other times. A page copied in a pre-copy round and written after it
 * must be copied again: after restart every page must agree with the array.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "cr.h"

#define PAGE	4096UL
#define NPAGES	(16384UL)	/* 64 MiB */

static unsigned char *region;
static uint64_t *gen;
static volatile int stop;
static volatile unsigned long rewrites;

static uint64_t fill(unsigned long i, uint64_t g)
{
	return (i + 1) * 0x9E3779B97F4A7C15ull ^ g * 0xD1B54A32D192ED03ull;
}

static void write_page(unsigned long i, uint64_t g)
{
	uint64_t *p = (uint64_t *)(region + i * PAGE), want = fill(i, g);
	unsigned long k;

	p[0] = g;
	for (k = 1; k < PAGE / 8; k++)
		p[k] = want + k;
}

static void *writer(void *arg)
{
	uint64_t x = 88172645463325252ull;
	struct timespec pause = { 0, 100000 };

	(void)arg;
	while (!stop) {
		unsigned long i;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = x % NPAGES;
		gen[i]++;
		write_page(i, gen[i]);
		rewrites++;
		if ((x & 15) == 0)
			nanosleep(&pause, NULL);
	}
	return NULL;
}

/* Returns the first page that disagrees with its generation, or -1. */
static long check(unsigned long *rewritten)
{
	unsigned long i, k;

	*rewritten = 0;
	for (i = 0; i < NPAGES; i++) {
		uint64_t *p = (uint64_t *)(region + i * PAGE), want = fill(i, gen[i]);

		if (p[0] != gen[i])
			return (long)i;
		for (k = 1; k < PAGE / 8; k++)
			if (p[k] != want + k)
				return (long)i;
		*rewritten += gen[i] != 0;
	}
	return -1;
}

int main(void)
{
	unsigned long i, rewritten, before;
	pthread_t thread;
	long bad;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);

	region = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(NPAGES, sizeof(*gen));
	if (region == MAP_FAILED || !gen)
		ksft_exit_fail_msg("allocating: %s", strerror(errno));
	for (i = 0; i < NPAGES; i++)
		write_page(i, 0);
	errno = pthread_create(&thread, NULL, writer, NULL);
	if (errno)
		ksft_exit_fail_msg("pthread_create: %s", strerror(errno));
	while (rewrites < 1000)
		usleep(1000);

	cr_ready();
	cr_wait_sigterm();

	/* The writer finishes the page it is in, then stops. */
	/* Running, not fast: on this VM a restored page's first write can
	 * take long, so give it up to 2 s. */
	before = rewrites;
	for (int waited = 0; rewrites == before && waited < 2000; waited++)
		usleep(1000);
	ksft_test_result(rewrites > before, "the writer thread runs after restart (%lu rewrites)", rewrites - before);
	stop = 1;
	pthread_join(thread, NULL);
	bad = check(&rewritten);
	ksft_test_result(bad < 0, "every page agrees with its generation (first bad page %ld)", bad);
	ksft_test_result(rewritten > NPAGES / 4, "pages were rewritten across the checkpoint (%lu of %lu)", rewritten, NPAGES);
	ksft_finished();
}

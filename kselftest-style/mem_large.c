// SPDX-License-Identifier: MIT
/*
 * mem_large: a 512 MiB anonymous buffer full of a pseudo-random pattern
 * survives checkpoint/restart (checksum and word-by-word comparison).
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "cr.h"

#define LEN	(512UL << 20)
#define WORDS	(LEN / sizeof(uint64_t))

static uint64_t next(uint64_t *s)	/* xorshift64* */
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t checksum(const uint64_t *buf)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < WORDS; i++)
		h = (h ^ buf[i]) * 0x100000001b3ULL + (h >> 29);
	return h;
}

/* Index of the first word differing from the generated stream, or -1. */
static long first_bad_word(const uint64_t *buf)
{
	uint64_t s = 0x1234567887654321ULL;
	size_t i;

	for (i = 0; i < WORDS; i++)
		if (buf[i] != next(&s))
			return (long)i;
	return -1;
}

static long mem_available_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int main(void)
{
	uint64_t *buf, s = 0x1234567887654321ULL, sum_before, sum_after;
	long avail, bad;
	size_t i;

	cr_init();
	ksft_print_header();
	avail = mem_available_kib();
	if (avail >= 0 && avail < (long)(3 * (LEN >> 10) / 2))
		ksft_exit_skip("needs 768 MiB available, have %ld KiB", avail);
	ksft_set_plan(2);

	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		ksft_exit_fail_msg("mmap %lu bytes: %s", LEN, strerror(errno));
	for (i = 0; i < WORDS; i++)
		buf[i] = next(&s);
	sum_before = checksum(buf);
	if ((bad = first_bad_word(buf)) >= 0)
		ksft_exit_fail_msg("setup: pattern wrong at word %ld", bad);
	ksft_print_msg("setup ok: %lu MiB at %p, checksum %016llx", LEN >> 20,
		       (void *)buf, (unsigned long long)sum_before);

	cr_ready();
	cr_wait_sigterm();

	sum_after = checksum(buf);
	ksft_test_result(sum_after == sum_before, "checksum %016llx == %016llx",
			 (unsigned long long)sum_after, (unsigned long long)sum_before);
	bad = first_bad_word(buf);
	ksft_test_result(bad < 0, "every word matches the pattern (first bad byte offset %ld)",
			 bad < 0 ? -1 : bad * 8);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * mem_patterns: known patterns in the heap, the stack, an anonymous private
 * mapping and copy-on-written pages of a private file mapping survive
 * checkpoint/restart; the file pages never written still read the file.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/stat.h>

#include "cr.h"

#define PAGE		4096UL
#define HEAP_LEN	(1UL << 20)
#define STACK_LEN	(64UL << 10)
#define ANON_PAGES	1024UL		/* 4 MiB, every 4th page left untouched */
#define FILE_PAGES	16UL		/* odd pages are written (COW) */

enum { SEED_HEAP = 1, SEED_STACK, SEED_ANON, SEED_FILE, SEED_COW };

static unsigned char *heap, *anon, *fmap;
static int file_fd;

/* The anon mapping: pattern pages, except every 4th page stays zero. */
static long check_anon(void)
{
	static const unsigned char zero[PAGE];
	unsigned long pg;

	for (pg = 0; pg < ANON_PAGES; pg++) {
		unsigned char *p = anon + pg * PAGE;

		if (pg % 4 == 3) {
			if (memcmp(p, zero, PAGE))
				return (long)(pg * PAGE);
		} else if (cr_check(p, PAGE, SEED_ANON + pg) >= 0) {
			return (long)(pg * PAGE);
		}
	}
	return -1;
}

/* Written pages hold the COW pattern, the others the file's content. */
static long check_fmap(int *bad_written)
{
	unsigned long pg;

	for (pg = 0; pg < FILE_PAGES; pg++) {
		unsigned char *p = fmap + pg * PAGE;
		int written = pg % 2;

		if (cr_check(p, PAGE, (written ? SEED_COW : SEED_FILE) + pg) >= 0) {
			*bad_written = written;
			return (long)(pg * PAGE);
		}
	}
	return -1;
}

/* The file itself must be untouched by the private writes. */
static long check_file_on_disk(void)
{
	unsigned char buf[PAGE];
	unsigned long pg;

	for (pg = 0; pg < FILE_PAGES; pg++) {
		if (pread(file_fd, buf, PAGE, pg * PAGE) != (ssize_t)PAGE)
			return (long)(pg * PAGE);
		if (cr_check(buf, PAGE, SEED_FILE + pg) >= 0)
			return (long)(pg * PAGE);
	}
	return -1;
}

int main(void)
{
	unsigned char stack[STACK_LEN];
	unsigned char page[PAGE];
	unsigned long pg;
	int bad_written = 0;
	long off;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);

	heap = malloc(HEAP_LEN);
	if (!heap)
		ksft_exit_fail_msg("malloc: %s", strerror(errno));
	cr_fill(heap, HEAP_LEN, SEED_HEAP);
	cr_fill(stack, STACK_LEN, SEED_STACK);

	anon = mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		ksft_exit_fail_msg("mmap anon: %s", strerror(errno));
	for (pg = 0; pg < ANON_PAGES; pg++)
		if (pg % 4 != 3)
			cr_fill(anon + pg * PAGE, PAGE, SEED_ANON + pg);

	file_fd = open(cr_path("mapped.dat"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (file_fd < 0)
		ksft_exit_fail_msg("open mapped.dat: %s", strerror(errno));
	for (pg = 0; pg < FILE_PAGES; pg++) {
		cr_fill(page, PAGE, SEED_FILE + pg);
		cr_write_all(file_fd, page, PAGE, "mapped.dat");
	}
	fmap = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, file_fd, 0);
	if (fmap == MAP_FAILED)
		ksft_exit_fail_msg("mmap file: %s", strerror(errno));
	/* Read every page first, so the unwritten ones are page-cache backed. */
	for (pg = 0; pg < FILE_PAGES; pg++)
		if (cr_check(fmap + pg * PAGE, PAGE, SEED_FILE + pg) >= 0)
			ksft_exit_fail_msg("setup: file mapping differs from file in page %lu", pg);
	for (pg = 1; pg < FILE_PAGES; pg += 2)
		cr_fill(fmap + pg * PAGE, PAGE, SEED_COW + pg);

	/* Setup verification: everything must already be right. */
	if (cr_check(heap, HEAP_LEN, SEED_HEAP) >= 0 || cr_check(stack, STACK_LEN, SEED_STACK) >= 0)
		ksft_exit_fail_msg("setup: heap/stack pattern not written");
	if ((off = check_anon()) >= 0)
		ksft_exit_fail_msg("setup: anon mapping wrong at %ld", off);
	if ((off = check_fmap(&bad_written)) >= 0)
		ksft_exit_fail_msg("setup: file mapping wrong at %ld", off);
	if ((off = check_file_on_disk()) >= 0)
		ksft_exit_fail_msg("setup: private writes reached the file at %ld", off);
	ksft_print_msg("setup ok: heap %p stack %p anon %p fmap %p", (void *)heap,
		       (void *)stack, (void *)anon, (void *)fmap);

	cr_ready();
	cr_wait_sigterm();

	off = cr_check(heap, HEAP_LEN, SEED_HEAP);
	ksft_test_result(off < 0, "heap pattern (first bad byte %ld)", off);
	off = cr_check(stack, STACK_LEN, SEED_STACK);
	ksft_test_result(off < 0, "stack pattern (first bad byte %ld)", off);
	off = check_anon();
	ksft_test_result(off < 0, "anon mapping: pattern pages and untouched zero pages (bad at %ld)", off);
	off = check_fmap(&bad_written);
	ksft_test_result(off < 0, "private file mapping: COW pages and unwritten file pages (bad %s page at %ld)",
			 bad_written ? "written" : "unwritten", off);
	off = check_file_on_disk();
	ksft_test_result(off < 0, "file content unchanged on disk (bad at %ld)", off);
	ksft_finished();
}

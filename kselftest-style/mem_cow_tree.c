// SPDX-License-Identifier: MIT
/*
 * mem_cow_tree: a parent writes 64 anonymous private pages and 16 pages of a
 * private file mapping, then forks a child. After the fork the child
 * rewrites some pages, drops others (MADV_DONTNEED: zeros, or the file's
 * page again) and the parent does the same to others still; the rest stay
 * shared copy-on-write. After restart both must read what they had, and
 * the pages neither touched after the fork must still be one page (the
 * same frame in /proc/PID/pagemap), not two copies.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include "cr.h"

#define PG 4096
#define ANON 64
#define FILEPG 16

static char *anon, *fmap;

/* What each page should hold: a seed, 0 for zeros, -1 for the file's. */
static long anon_want(int child, int i)
{
	if (child && i < 8)
		return 10 + i; /* the child rewrote it */
	if (child && i >= 8 && i < 12)
		return 0; /* the child dropped it */
	if (!child && i >= 16 && i < 20)
		return 20 + i; /* the parent rewrote it */
	if (!child && i >= 20 && i < 24)
		return 0; /* the parent dropped it */
	return 100 + i;
}

static long file_want(int child, int i)
{
	if (i >= 8)
		return child && i == 8 ? 300 : -1; /* page 8: the child's own copy */
	if (child && i == 4)
		return -1; /* dropped by the child: the file's page again */
	if (!child && i == 5)
		return 200 + i + 50; /* rewritten by the parent */
	return 200 + i;
}

static int check_page(const char *p, long want, int i)
{
	static char zero[PG];

	if (want == 0)
		return memcmp(p, zero, PG) == 0;
	if (want < 0)
		return cr_check(p, PG, 1000 + i) < 0;
	return cr_check(p, PG, want) < 0;
}

static int check_all(int child)
{
	int i, bad = 0;

	for (i = 0; i < ANON; i++)
		if (!check_page(anon + i * PG, anon_want(child, i), i)) {
			ksft_print_msg("%s: anonymous page %d is wrong", child ? "child" : "parent", i);
			bad++;
		}
	for (i = 0; i < FILEPG; i++)
		if (!check_page(fmap + i * PG, file_want(child, i), i)) {
			ksft_print_msg("%s: file page %d is wrong", child ? "child" : "parent", i);
			bad++;
		}
	return bad == 0;
}

static uint64_t pagemap(int fd, const void *p)
{
	uint64_t e = 0;

	if (pread(fd, &e, sizeof(e), (uintptr_t)p / PG * sizeof(e)) != sizeof(e))
		return 0;
	return e;
}

#define PFN(e) ((e) & ((1ULL << 55) - 1))
#define PRESENT(e) ((e) >> 63 & 1)

/* Counts the pages of [p, p+n pages) shared (same frame) and not, among
 * those want says must be shared, and returns -1 if frames are hidden. */
static int shared_pages(pid_t child, int *shared, int *separate)
{
	char path[64];
	int me, ch, i;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", child);
	me = open("/proc/self/pagemap", O_RDONLY);
	ch = open(path, O_RDONLY);
	if (me < 0 || ch < 0)
		ksft_exit_fail_msg("open pagemap: %s", strerror(errno));
	*shared = *separate = 0;
	for (i = 0; i < ANON + FILEPG; i++) {
		const char *p = i < ANON ? anon + i * PG : fmap + (i - ANON) * PG;
		int must = i < ANON ? anon_want(0, i) == anon_want(1, i) : file_want(0, i - ANON) == file_want(1, i - ANON) && file_want(0, i - ANON) > 0;
		uint64_t a = pagemap(me, p), b = pagemap(ch, p);

		if (!PRESENT(a) || !PRESENT(b))
			continue;
		if (PFN(a) == 0)
			return -1;
		if (must && PFN(a) == PFN(b))
			(*shared)++;
		else if (must)
			ksft_print_msg("page %s %d: parent frame %#llx, child %#llx", i < ANON ? "anon" : "file", i < ANON ? i : i - ANON,
				       (unsigned long long)PFN(a), (unsigned long long)PFN(b));
		if (!must && PFN(a) != PFN(b))
			(*separate)++;
	}
	close(me);
	close(ch);
	return 0;
}

int main(void)
{
	int go[2], res[2], fd, i, st, shared, separate, want_shared = 0;
	char c = 0, buf[PG];
	pid_t pid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	fd = open(cr_path("mapped"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		ksft_exit_fail_msg("setup: open: %s", strerror(errno));
	for (i = 0; i < FILEPG; i++) {
		cr_fill(buf, PG, 1000 + i);
		cr_write_all(fd, buf, PG, "mapped");
	}
	anon = mmap(NULL, ANON * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fmap = mmap(NULL, FILEPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (anon == MAP_FAILED || fmap == MAP_FAILED || pipe(go) || pipe(res))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	close(fd);
	for (i = 0; i < ANON; i++)
		cr_fill(anon + i * PG, PG, 100 + i);
	for (i = 0; i < 8; i++)
		cr_fill(fmap + i * PG, PG, 200 + i);
	for (i = 8; i < FILEPG; i++)
		if (fmap[i * PG] == 0x7f) /* read: the file's page */
			ksft_print_msg("file page %d starts with 0x7f", i);

	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		for (i = 0; i < 8; i++)
			cr_fill(anon + i * PG, PG, 10 + i);
		madvise(anon + 8 * PG, 4 * PG, MADV_DONTNEED);
		madvise(fmap + 4 * PG, PG, MADV_DONTNEED);
		cr_fill(fmap + 8 * PG, PG, 300);
		if (write(res[1], &c, 1) != 1)
			_exit(2);
		if (read(go[0], &c, 1) != 1) /* checkpointed here */
			_exit(2);
		c = check_all(1);
		_exit(write(res[1], &c, 1) == 1 ? 0 : 2);
	}
	if (read(res[0], &c, 1) != 1)
		ksft_exit_fail_msg("setup: the child did not start");
	for (i = 16; i < 20; i++)
		cr_fill(anon + i * PG, PG, 20 + i);
	madvise(anon + 20 * PG, 4 * PG, MADV_DONTNEED);
	cr_fill(fmap + 5 * PG, PG, 200 + 5 + 50);
	for (i = 0; i < ANON; i++)
		want_shared += anon_want(0, i) == anon_want(1, i);
	if (!check_all(0))
		ksft_exit_fail_msg("setup: the parent's pages are wrong");
	if (shared_pages(pid, &shared, &separate) == 0 && shared < want_shared)
		ksft_exit_fail_msg("setup: only %d of the %d anonymous pages are shared after fork", shared, want_shared);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(check_all(0), "the parent's pages hold what it wrote");
	if (shared_pages(pid, &shared, &separate) < 0) {
		ksft_test_result_skip("page frames are hidden (no CAP_SYS_ADMIN)");
	} else {
		/* the 6 private file pages written before the fork and not since */
		ksft_test_result(shared == want_shared + 6, "%d of %d pages untouched since the fork are still shared", shared, want_shared + 6);
	}
	if (write(go[1], &c, 1) != 1 || read(res[0], &c, 1) != 1)
		c = 0;
	ksft_test_result(c == 1, "the child's pages hold what it wrote, dropped pages read as zeros or the file's");
	ksft_test_result(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exited cleanly");
	ksft_finished();
}

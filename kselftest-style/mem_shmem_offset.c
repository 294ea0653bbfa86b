// SPDX-License-Identifier: MIT
/*
 * mem_shmem_offset: a MAP_SHARED | MAP_ANONYMOUS object of 64 pages that the
 * parent, the first process of the image, maps only part of: it unmapped
 * the first 32 pages, and maps pages 4-5 a second time through
 * /proc/self/map_files. Its child maps the whole object and wrote a page
 * the parent no longer maps. After restart the object must be one again,
 * whole: each sees what the other wrote, at the right offsets, including
 * the page outside the parent's part, and a write after restart by either
 * side is seen by the other.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include "cr.h"

#define PG 4096
#define NPG 64

static int page_is(const char *p, uint64_t seed)
{
	return cr_check(p, PG, seed) < 0;
}

int main(void)
{
	char *obj, *view, *part, path[128], c = 0;
	int go[2], res[2], fd, st;
	pid_t pid;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	obj = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (obj == MAP_FAILED || pipe(go) || pipe(res))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	cr_fill(obj + 40 * PG, PG, 40);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		cr_fill(obj + 2 * PG, PG, 2); /* a page the parent will not map */
		cr_fill(obj + 5 * PG, PG, 5); /* one it maps twice */
		if (write(res[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) /* checkpointed here */
			_exit(2);
		/* after restart: the parent wrote page 41 and 63, we write 3 */
		c = page_is(obj + 2 * PG, 2) && page_is(obj + 40 * PG, 40) && page_is(obj + 41 * PG, 41) &&
		    page_is(obj + 63 * PG, 63);
		cr_fill(obj + 3 * PG, PG, 3);
		_exit(write(res[1], &c, 1) == 1 ? 0 : 2);
	}
	if (read(res[0], &c, 1) != 1)
		ksft_exit_fail_msg("setup: the child did not start");
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)obj, (unsigned long)obj + NPG * PG);
	fd = open(path, O_RDWR);
	if (fd < 0)
		ksft_exit_fail_msg("setup: open %s: %s", path, strerror(errno));
	view = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4 * PG);
	close(fd);
	if (view == MAP_FAILED || munmap(obj, 32 * PG))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	part = obj + 32 * PG; /* pages 32-63 of the object */
	cr_fill(part + 31 * PG, PG, 63);
	if (!page_is(view + PG, 5) || !page_is(part + 8 * PG, 40))
		ksft_exit_fail_msg("setup: the object's pages are not where they should be");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(page_is(part + 8 * PG, 40) && page_is(part + 31 * PG, 63), "the parent's part (from offset 32 pages) holds its pages");
	ksft_test_result(page_is(view + PG, 5), "the second view (offset 4 pages) holds the child's page 5");
	cr_fill(part + 9 * PG, PG, 41);
	if (write(go[1], &c, 1) != 1 || read(res[0], &c, 1) != 1)
		c = 0;
	ksft_test_result(c == 1, "the child sees the whole object: its own page 2, and the parent's pages, old and new");
	ksft_test_result(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exited cleanly");
	/* page 3 is in neither of the parent's mappings: read it through the object */
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)view, (unsigned long)view + 2 * PG);
	fd = open(path, O_RDONLY);
	{
		char buf[PG];

		ksft_test_result(fd >= 0 && pread(fd, buf, PG, 3 * PG) == PG && page_is(buf, 3),
				 "a page the child wrote after restart, outside the parent's mappings, is in the object");
	}
	ksft_finished();
}

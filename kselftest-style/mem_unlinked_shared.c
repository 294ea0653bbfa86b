// SPDX-License-Identifier: MIT
/*
 * mem_unlinked_shared: one object held by an fd, a shared mapping and a
 * private mapping stays one object (zdtm unlink_mmap02, shmemfd-priv):
 *
 *   fd 40: an unlinked file of 3 pages (shm_open then shm_unlink, as
 *          POSIX shared memory users do), mapped shared at A and private
 *          at B, whose page 1 was written (its own copy)
 *   fd 41: shared anonymous memory of 3 pages (MAP_SHARED|MAP_ANONYMOUS
 *          at C) opened through /proc/self/map_files, mapped private at
 *          D, whose page 1 was written
 *
 * After restart a write through either fd shows in both mappings (page 2
 * of the private ones, never written, is still the file's), a write into
 * the shared mapping shows through the fd, the private copies are kept,
 * and fd 41 and both of its mappings are still shared anonymous memory
 * ("/dev/zero (deleted)") of one inode.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/stat.h>
#include "cr.h"

#define PG	4096
#define SIZE	(3 * PG)

static char *map(int prot, int flags, int fd)
{
	char *p = mmap(NULL, SIZE, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("setup: mmap: %s", strerror(errno));
	return p;
}

/* The inode /proc/self/maps gives the mapping at p. */
static unsigned long inode_of(const void *p)
{
	char line[512];
	unsigned long start, ino = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%*x %*s %*s %*s %lu", &start, &ino) == 2 && start == (unsigned long)p)
			break;
		else
			ino = 0;
	if (f)
		fclose(f);
	return ino;
}

int main(void)
{
	char *a, *b, *c, *d, link[64] = "", path[64], ch;
	struct stat st;
	ssize_t n;
	int fd;

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);

	fd = open(cr_path("shm"), O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || dup2(fd, 40) != 40 || ftruncate(40, SIZE))
		ksft_exit_fail_msg("setup: the file: %s", strerror(errno));
	close(fd);
	a = map(PROT_READ | PROT_WRITE, MAP_SHARED, 40);
	b = map(PROT_READ | PROT_WRITE, MAP_PRIVATE, 40);
	if (unlink(cr_path("shm")))
		ksft_exit_fail_msg("setup: unlink: %s", strerror(errno));
	a[0] = 'a';
	b[PG] = 'p';

	c = map(PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)c, (unsigned long)c + SIZE);
	fd = open(path, O_RDWR);
	if (fd < 0 || dup2(fd, 41) != 41)
		ksft_exit_fail_msg("setup: %s: %s", path, strerror(errno));
	close(fd);
	d = map(PROT_READ | PROT_WRITE, MAP_PRIVATE, 41);
	c[0] = 'c';
	d[PG] = 'q';
	if (d[0] != 'c' || b[0] != 'a' || a[PG] || c[PG])
		ksft_exit_fail_msg("setup: the mappings do not share as they should");
	ksft_print_msg("setup ok");

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(pwrite(40, "F", 1, 2 * PG) == 1 && a[2 * PG] == 'F' && b[2 * PG] == 'F',
			 "a write through the unlinked file's fd shows in both mappings");
	a[2 * PG + 1] = 'A';
	ksft_test_result(pread(40, &ch, 1, 2 * PG + 1) == 1 && ch == 'A' && b[0] == 'a' && b[PG] == 'p' && !a[PG],
			 "a write into its shared mapping shows through the fd; the private copy is kept");
	ksft_test_result(pwrite(41, "G", 1, 2 * PG) == 1 && c[2 * PG] == 'G' && d[2 * PG] == 'G',
			 "a write through the shared anonymous memory's fd shows in both mappings");
	c[2 * PG + 1] = 'C';
	ksft_test_result(pread(41, &ch, 1, 2 * PG + 1) == 1 && ch == 'C' && d[0] == 'c' && d[PG] == 'q' && !c[PG],
			 "a write into the shared anonymous mapping shows through the fd; the private copy is kept");
	n = readlink("/proc/self/fd/41", link, sizeof(link) - 1);
	if (n > 0)
		link[n] = 0;
	ksft_test_result(!strcmp(link, "/dev/zero (deleted)") && fstat(41, &st) == 0 &&
			 inode_of(c) == st.st_ino && inode_of(d) == st.st_ino,
			 "fd 41 and both mappings are shared anonymous memory of one inode (%s)", link);
	ksft_test_result(fstat(40, &st) == 0 && st.st_nlink == 0 && st.st_size == SIZE, "fd 40 is an unlinked file of %d bytes", SIZE);
	ksft_finished();
}

// SPDX-License-Identifier: MIT
/*
 * memfd: a sealed memfd with contents, its fd at an offset, and a shared
 * mapping of it. After restart the contents, size, seals and offset are
 * intact, and the fd and the mapping are still one object: a write through
 * either is seen through the other.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include "cr.h"

#define SIZE (3 * 4096)

int main(void)
{
	char buf[16] = { 0 };
	char *map;
	int fd, i, ok = 1;

	cr_init();
	ksft_print_header();
	ksft_set_plan(5);
	fd = memfd_create("crsub-test", MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, SIZE))
		ksft_exit_fail_msg("memfd: %s", strerror(errno));
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s", strerror(errno));
	for (i = 0; i < SIZE; i++)
		map[i] = 'a' + i % 26;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) || lseek(fd, 4096 + 3, SEEK_SET) != 4096 + 3)
		ksft_exit_fail_msg("seal/seek: %s", strerror(errno));
	ksft_print_msg("setup ok: memfd fd %d mapped at %p", fd, map);

	cr_ready();
	cr_wait_sigterm();

	for (i = 0; i < SIZE && ok; i++)
		ok = map[i] == 'a' + i % 26;
	ksft_test_result(ok, "the mapping holds the contents");
	ksft_test_result(lseek(fd, 0, SEEK_CUR) == 4096 + 3 && lseek(fd, 0, SEEK_END) == SIZE, "offset and size intact");
	ksft_test_result(fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "seals intact (%#x)", fcntl(fd, F_GET_SEALS));
	map[100] = '#';
	ksft_test_result(pread(fd, buf, 1, 100) == 1 && buf[0] == '#', "a write through the mapping is read through the fd");
	ksft_test_result(pwrite(fd, "!", 1, 200) == 1 && map[200] == '!', "a write through the fd is seen in the mapping");
	ksft_finished();
}

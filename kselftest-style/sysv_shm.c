// SPDX-License-Identifier: MIT
/*
 * sysv_shm: two System V shared memory segments, one keyed, one removed
 * (IPC_RMID) while attached, hold patterns. After restart both are the
 * segments the process knows by id: attached, with their contents, the
 * keyed one with its key and mode, the removed one still removed.
 */
#define _GNU_SOURCE
#include <sys/shm.h>
#include "cr.h"

#define LEN 8192

static int pattern(const char *p, char c)
{
	for (int i = 0; i < LEN; i++)
		if (p[i] != (char)(c + i % 7))
			return 0;
	return 1;
}

int main(void)
{
	key_t key = (getpid() << 8) | 0x5f;
	struct shmid_ds da, db;
	char *pa, *pb;
	int a, b;

	cr_init();
	ksft_print_header();
	ksft_set_plan(4);
	a = shmget(key, LEN, IPC_CREAT | IPC_EXCL | 0640);
	b = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
	if (a < 0 || b < 0)
		ksft_exit_fail_msg("shmget: %s", strerror(errno));
	pa = shmat(a, NULL, 0);
	pb = shmat(b, NULL, 0);
	if (pa == (void *)-1 || pb == (void *)-1)
		ksft_exit_fail_msg("shmat: %s", strerror(errno));
	for (int i = 0; i < LEN; i++) {
		pa[i] = 'a' + i % 7;
		pb[i] = 'b' + i % 7;
	}
	shmctl(b, IPC_RMID, NULL);
	ksft_print_msg("setup ok: segments %d (key %#x) and %d (removed)", a, key, b);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(shmctl(a, IPC_STAT, &da) == 0 && da.shm_perm.__key == key && (da.shm_perm.mode & 0777) == 0640,
			 "segment %d found by its id, key and mode kept", a);
	ksft_test_result(da.shm_nattch == 1 && pattern(pa, 'a'), "attached here, contents intact (%lu attached)", (unsigned long)da.shm_nattch);
	ksft_test_result(shmctl(b, IPC_STAT, &db) == 0 && (db.shm_perm.mode & 01000), "removed segment %d found by its id, still removed", b);
	ksft_test_result(pattern(pb, 'b'), "its contents intact");
	shmctl(a, IPC_RMID, NULL);
	ksft_finished();
}

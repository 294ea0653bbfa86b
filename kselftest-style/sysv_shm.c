// SPDX-License-Identifier: MIT
/*
 * sysv_shm: two System V shared memory segments, one keyed, one removed
 * (IPC_RMID) while attached, hold patterns. After restart both are the
 * segments the process knows by id: attached, with their contents, the
 * keyed one with its key and mode, the removed one still removed. A third,
 * attached once and split in two by an mprotect of its first page, comes
 * back as one attachment: the first page read-only, the second writable,
 * and shmdt of its start detaches both.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/shm.h>
#include "cr.h"

#define LEN 8192

/* The permissions /proc/self/maps shows for the area that starts at p. */
static const char *perms(const void *p)
{
	static char out[5];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	strcpy(out, "none");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start;
		char prot[5];

		if (sscanf(line, "%lx-%*x %4s", &start, prot) == 2 && start == (unsigned long)p) {
			strcpy(out, prot);
			break;
		}
	}
	if (f)
		fclose(f);
	return out;
}

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
	struct shmid_ds da, db, dc;
	char *pa, *pb, *pc;
	int a, b, c;
	long page = sysconf(_SC_PAGESIZE);

	cr_init();
	ksft_print_header();
	ksft_set_plan(8);
	a = shmget(key, LEN, IPC_CREAT | IPC_EXCL | 0640);
	b = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
	c = shmget(IPC_PRIVATE, 2 * page, IPC_CREAT | 0600);
	if (a < 0 || b < 0 || c < 0)
		ksft_exit_fail_msg("shmget: %s", strerror(errno));
	pa = shmat(a, NULL, 0);
	pb = shmat(b, NULL, 0);
	pc = shmat(c, NULL, 0);
	if (pa == (void *)-1 || pb == (void *)-1 || pc == (void *)-1)
		ksft_exit_fail_msg("shmat: %s", strerror(errno));
	for (int i = 0; i < LEN; i++) {
		pa[i] = 'a' + i % 7;
		pb[i] = 'b' + i % 7;
	}
	pc[0] = 'R';
	pc[page] = 'W';
	if (mprotect(pc, page, PROT_READ))
		ksft_exit_fail_msg("mprotect: %s", strerror(errno));
	if (strcmp(perms(pc), "r--s") || strcmp(perms(pc + page), "rw-s"))
		ksft_exit_fail_msg("split attachment shows %s and %s", perms(pc), perms(pc + page));
	shmctl(b, IPC_RMID, NULL);
	ksft_print_msg("setup ok: segments %d (key %#x), %d (removed) and %d (split)", a, key, b, c);

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(shmctl(a, IPC_STAT, &da) == 0 && da.shm_perm.__key == key && (da.shm_perm.mode & 0777) == 0640,
			 "segment %d found by its id, key and mode kept", a);
	ksft_test_result(da.shm_nattch == 1 && pattern(pa, 'a'), "attached here, contents intact (%lu attached)", (unsigned long)da.shm_nattch);
	ksft_test_result(shmctl(b, IPC_STAT, &db) == 0 && (db.shm_perm.mode & 01000), "removed segment %d found by its id, still removed", b);
	ksft_test_result(pattern(pb, 'b'), "its contents intact");
	ksft_test_result(!strcmp(perms(pc), "r--s") && !strcmp(perms(pc + page), "rw-s"),
			 "split attachment of %d: %s then %s", c, perms(pc), perms(pc + page));
	ksft_test_result(pc[0] == 'R' && pc[page] == 'W', "its contents intact");
	pc[page] = 'w';
	ksft_test_result(shmctl(c, IPC_STAT, &dc) == 0 && dc.shm_nattch == 2, "attached through its 2 areas (%lu)", (unsigned long)dc.shm_nattch);
	ksft_test_result(shmdt(pc) == 0 && shmctl(c, IPC_STAT, &dc) == 0 && dc.shm_nattch == 0 && !strcmp(perms(pc + page), "none"),
			 "shmdt of its start detaches both (%lu left)", (unsigned long)dc.shm_nattch);
	shmctl(c, IPC_RMID, NULL);
	shmctl(a, IPC_RMID, NULL);
	ksft_finished();
}

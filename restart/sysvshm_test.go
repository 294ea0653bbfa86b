package restart_test

import (
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// sysvShm attaches two System V segments: A by a key, B private and
// removed (IPC_RMID) while attached, each holding a pattern. On SIGUSR1 it
// checks both by their ids — A's key, attach count, both patterns, B still
// removed — reports, and removes A.
const sysvShm = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/shm.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
static int pattern(const char *p, char c) { for (int i = 0; i < 8192; i++) if (p[i] != (char)(c + i % 7)) return 0; return 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	key_t key = (getpid() << 8) | 0x5e;
	int a = shmget(key, 8192, IPC_CREAT | IPC_EXCL | 0640), b = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
	char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
	if (a < 0 || b < 0 || pa == (void *)-1 || pb == (void *)-1) return 1;
	for (int i = 0; i < 8192; i++) { pa[i] = 'a' + i % 7; pb[i] = 'b' + i % 7; }
	shmctl(b, IPC_RMID, NULL);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	struct shmid_ds da, db;
	int ea = shmctl(a, IPC_STAT, &da), eb = shmctl(b, IPC_STAT, &db);
	FILE *f = fopen("report", "w");
	fprintf(f, "a: stat=%d key=%d attached=%lu mode=%o data=%d; b: stat=%d removed=%d data=%d", ea, da.shm_perm.__key == key, (unsigned long)da.shm_nattch,
		da.shm_perm.mode & 0777, pattern(pa, 'a'), eb, (db.shm_perm.mode & 01000) != 0, pattern(pb, 'b'));
	fclose(f);
	shmctl(a, IPC_RMID, NULL);
	for (;;) pause();
}
`

// System V shared memory comes back as the segments the process knows by
// id: a keyed one still there after the kill is attached again, a removed
// one is made again with its id and contents, and removed again.
func TestSysVSharedMemory(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, sysvShm))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "a: stat=0 key=1 attached=1 mode=640 data=1; b: stat=0 removed=1 data=1" {
		t.Fatalf("restored segments: %q", got)
	}
}

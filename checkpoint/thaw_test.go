package checkpoint

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// waiter waits in epoll_wait on the pipe at fd 50/51 (main thread) and in
// semop (a second thread); when the pipe gets a byte it writes what both
// calls returned to "result".
const waiter = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/sem.h>
#include <unistd.h>
static int semid, sem_ret = -2, sem_err;
static void *down(void *a) {
	struct sembuf op = { .sem_num = 0, .sem_op = -1 };
	(void)a;
	sem_ret = semop(semid, &op, 1);
	sem_err = errno;
	return 0;
}
int main(void) {
	int p[2];
	pipe(p); dup2(p[0], 50); dup2(p[1], 51);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, got;
	epoll_ctl(ep, EPOLL_CTL_ADD, 50, &ev);
	semid = semget(IPC_PRIVATE, 1, 0600);
	pthread_t t;
	pthread_create(&t, 0, down, 0);
	usleep(100000);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	int n = epoll_wait(ep, &got, 1, -1), err = errno;
	struct sembuf up = { .sem_num = 0, .sem_op = 1 };
	semop(semid, &up, 1);
	pthread_join(t, 0);
	semctl(semid, 0, IPC_RMID);
	FILE *f = fopen("result.tmp", "w");
	fprintf(f, "epoll %d %d semop %d %d", n, n < 0 ? err : 0, sem_ret, sem_ret < 0 ? sem_err : 0);
	fclose(f);
	rename("result.tmp", "result");
	return 0;
}`

// A process the checkpoint lets run on waits on in epoll_wait and semop,
// which the freeze ended with EINTR: without the checkpoint it would not
// have seen one.
func TestThawKeepsWaiting(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, waiter))
	crtest.WaitBlocked(t, p.Pid)
	opts := DefaultOptions()
	opts.LeaveRunning = true
	if _, err := Checkpoint(context.Background(), p.Pid, io.Discard, opts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/"+strconv.Itoa(p.Pid)+"/fd/51", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "result")
	crtest.WaitFor(t, func() bool { _, err := os.Stat(path); return err == nil }, "the result")
	got, _ := os.ReadFile(path)
	if want := "epoll 1 0 semop 0 0"; string(got) != want {
		t.Errorf("after the checkpoint let it run: %q, want %q", got, want)
	}
	p.Wait()
}

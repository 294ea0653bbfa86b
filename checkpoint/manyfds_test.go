package checkpoint_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
)

// A tree may hold far more fds than crsub may open: here a socket pair
// inherited by four processes, each end dup'd 800 times, and 150 pipes:
// 7600 fds on 302 open file descriptions, checkpointed with a limit of 1024
// open files. crsub holds one copy per description, not one per fd.
func TestManyFdsOneDescription(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	bin := crtest.Build(t, `#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	struct rlimit r = { 4096, 4096 };
	int sv[2];
	if (setrlimit(RLIMIT_NOFILE, &r) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		exit(1);
	for (int i = 0; i < 800; i++)
		if (dup(sv[0]) < 0 || dup(sv[1]) < 0)
			exit(1);
	for (int i = 0; i < 150; i++)
		if (pipe(sv))
			exit(1);
	for (int i = 0; i < 3; i++)
		if (fork() == 0)
			for (;;) pause();
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`)
	p := crtest.Start(t, dir, bin)
	t.Cleanup(func() { _ = unix.Kill(-p.Pid, unix.SIGKILL) }) // the children too
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: 1024, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	_, err := checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, opts)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("checkpoint of 7600 fds on 302 descriptions with 1024 open files allowed: %v", err)
	}
	// With fewer files allowed than the tree has descriptions, the error
	// says what to raise.
	few := unix.Rlimit{Cur: 128, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &few); err != nil {
		t.Fatal(err)
	}
	_, err = checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, opts)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("checkpoint with 128 open files allowed: %v, want an error naming RLIMIT_NOFILE", err)
	}
}

package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// sharedLog opens shared.log at fd 5 (without O_APPEND: writes through one
// open file description advance one offset), dups it to fd 6 and forks a
// child that inherits both. On SIGUSR1 the parent writes "P" through fd 5,
// then has the child write "C" through its fd 5, then writes "Q" through
// fd 6: one description gives "PCQ", separate ones overwrite each other.
const sharedLog = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	int fd = open("shared.log", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 5) < 0 || dup2(fd, 6) < 0) return 1;
	close(fd);
	int turn[2], done[2];
	pipe(turn), pipe(done);
	pid_t child = fork();
	if (child == 0) {
		char b;
		read(turn[0], &b, 1);
		write(5, "C", 1);
		write(done[1], "x", 1);
		for (;;) pause();
	}
	FILE *f = fopen("child.pid", "w");
	fprintf(f, "%d", child);
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	char b;
	write(5, "P", 1);
	write(turn[1], "x", 1);
	read(done[0], &b, 1);
	write(6, "Q", 1);
	close(open("report", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// A substitute for an fd whose open file the process shares with another
// of its fds and with its child replaces that open file: all three fds
// share the substitute after restart, as they shared the original. The
// restart is given only the root's fd 5.
func TestSubstituteSharedByChild(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, sharedLog))
	child := childPid(t, dir)
	img := checkpointToMemory(t, p)
	os.Remove(filepath.Join(dir, "shared.log")) // gone: only a substitute can restart it
	awaitReaped(child)
	opts := restart.DefaultOptions()
	newLog := filepath.Join(dir, "new.log")
	opts.Substitutes = map[int]substitute.Source{5: mustParse(t, "file:"+newLog+",create")}
	rp, err := restart.Restart(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(child, syscall.SIGKILL); rp.Signal(syscall.SIGKILL); rp.Wait() }()
	// From outside: the three fds are one open file, the substitute.
	for _, at := range []struct{ pid, fd int }{{rp.Pid, 5}, {rp.Pid, 6}, {child, 5}} {
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(at.pid) + "/fd/" + strconv.Itoa(at.fd)); target != newLog {
			t.Errorf("pid %d fd %d is %q, want the substitute %s", at.pid, at.fd, target, newLog)
		}
	}
	for _, at := range []struct{ pid, fd int }{{rp.Pid, 6}, {child, 5}} {
		if same, err := sys.Kcmp(rp.Pid, at.pid, sys.KcmpFile, 5, uintptr(at.fd)); err != nil || same != sys.KcmpEqual {
			t.Errorf("pid %d fd %d and the root's fd 5: kcmp %d, %v; want one open file", at.pid, at.fd, same, err)
		}
	}
	// From inside: writes through the three advance one offset.
	rp.Signal(syscall.SIGUSR1)
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "report")); return err == nil }, "report")
	if got, _ := os.ReadFile(newLog); string(got) != "PCQ" {
		t.Errorf("substitute holds %q, want %q", got, "PCQ")
	}
}

package restart_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/ptrace"
)

// ticker appends a line to the file "ticks" every 10 ms.
const ticker = `#include <fcntl.h>
#include <unistd.h>
int main(void) {
	int fd = open("ticks", O_WRONLY | O_CREAT | O_APPEND, 0600);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		write(fd, "tick\n", 5);
		usleep(10000);
	}
}
`

// A process stopped by SIGSTOP when checkpointed comes back stopped, and
// goes on when continued.
func TestStoppedProcessStaysStopped(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, ticker))
	p.Signal(syscall.SIGSTOP)
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(p.Pid, "State"), "T") }, "the stop")
	rp := checkpointAndRestart(t, p)
	ticks := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "ticks"))
		return len(b)
	}
	n := ticks()
	time.Sleep(100 * time.Millisecond)
	if st := crtest.Status(rp.Pid, "State"); !strings.HasPrefix(st, "T") || ticks() != n {
		t.Fatalf("restored process in state %q, %d -> %d bytes of ticks: want it stopped", st, n, ticks())
	}
	rp.Signal(syscall.SIGCONT)
	crtest.WaitFor(t, func() bool { return ticks() > n }, "ticks after SIGCONT")
}

// tstpTree's child leads a process group of its own in its parent's
// session, which SIGTSTP can stop (in an orphaned group, as a session
// leader's own, the kernel drops it); it writes its pid to "child".
const tstpTree = `#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
int main(void) {
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		FILE *f = fopen("child.tmp", "w");
		fprintf(f, "%d", getpid());
		fclose(f);
		rename("child.tmp", "child");
		for (;;) pause();
	}
	while (access("child", F_OK)) usleep(1000);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// A process stopped by SIGTSTP comes back stopped by SIGTSTP, not SIGSTOP:
// its parent's waitid and a tracer see which.
func TestStoppedBySIGTSTP(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, tstpTree))
	b, _ := os.ReadFile(filepath.Join(dir, "child"))
	child, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(child, syscall.SIGTSTP)
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(child, "State"), "T") }, "the stop")
	checkpointAndRestart(t, p)
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(child, "State"), "T") }, "the restored child stopped")
	sig, err := ptrace.OnTracerThread(func() (int, error) {
		tr, err := ptrace.Seize(child)
		if err != nil {
			return 0, err
		}
		defer tr.Detach()
		return tr.GroupStopSignal(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sig != int(syscall.SIGTSTP) {
		t.Errorf("the restored child is stopped by signal %d, want SIGTSTP (%d)", sig, syscall.SIGTSTP)
	}
}

// subreaper marks itself a child subreaper and, on SIGUSR1, forks a child
// that forks a grandchild and exits: the orphaned grandchild must come to
// this process, which writes its verdict to the file "reaper".
const subreaper = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	int is = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &is);
	int p[2];
	pipe(p);
	if (fork() == 0) {
		if (fork() == 0) { char c; close(p[1]); read(p[0], &c, 1); _exit(0); }
		_exit(0);
	}
	wait(NULL); /* the child */
	close(p[0]);
	close(p[1]); /* the grandchild reads EOF and exits */
	pid_t g = wait(NULL); /* ours only if we are its subreaper */
	FILE *f = fopen("reaper", "w");
	fprintf(f, "subreaper=%d grandchild=%s", is, g > 0 ? "reaped" : "lost");
	fclose(f);
	for (;;) pause();
}
`

func TestChildSubreaperKept(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subreaper))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "reaper"); got != "subreaper=1 grandchild=reaped" {
		t.Fatalf("restored process: %q", got)
	}
}

// A process in a user namespace crsub cannot checkpoint yet is refused by
// name and left running: one nested two deep below crsub's, one whose maps
// are not written (both before anything is frozen), one in a namespace
// another user namespace than its own owns (made before it unshared its
// user namespace), which a restart could not make so.
func TestUserNamespaceRefused(t *testing.T) {
	crtest.RequireRoot(t)
	for _, c := range []struct{ name, setup, kind, reason string }{
		{"nested", `if (unshare(CLONE_NEWUSER) || put("/proc/self/setgroups", "deny") || put("/proc/self/uid_map", "0 0 1") ||
		put("/proc/self/gid_map", "0 0 1") || unshare(CLONE_NEWUSER)) return 1;`, "user", "nested more than one deep"},
		{"unmapped", `if (unshare(CLONE_NEWUSER)) return 1;`, "user", "its uid_map is not written"},
		{"owned by another", `if (unshare(CLONE_NEWUTS) || unshare(CLONE_NEWUSER) || put("/proc/self/setgroups", "deny") ||
		put("/proc/self/uid_map", "0 0 1") || put("/proc/self/gid_map", "0 0 1")) return 1;`, "uts", "it is owned by user namespace"},
	} {
		dir := t.TempDir()
		p := crtest.Start(t, dir, crtest.Build(t, `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
static int put(const char *p, const char *s) {
	int fd = open(p, O_WRONLY);
	int bad = fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s);
	close(fd);
	return bad;
}
int main(void) {
	`+c.setup+`
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`))
		_, err := checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, checkpoint.DefaultOptions())
		var nsErr *checkpoint.NamespaceError
		if !errors.As(err, &nsErr) || nsErr.Kind != c.kind || nsErr.Pid != p.Pid || !strings.Contains(err.Error(), c.reason) {
			t.Fatalf("%s: checkpoint error %v, want the %s namespace named: %s", c.name, err, c.kind, c.reason)
		}
		crtest.WaitFor(t, func() bool {
			return strings.HasPrefix(crtest.Status(p.Pid, "State"), "S") && crtest.Status(p.Pid, "TracerPid") == "0"
		}, "the refused process asleep and untraced again")
	}
}

// removedDir works in a directory it then removes, and keeps it open as
// fd 7. On SIGUSR1 it reports what its working directory and fd 7 are.
const removedDir = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	if (mkdir("gone", 0700) || chdir("gone") || dup2(open(".", O_RDONLY | O_DIRECTORY), 7) != 7 || rmdir("../gone")) return 1;
	close(open("../ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	struct stat cwd, fd;
	int e1 = stat(".", &cwd), e2 = fstat(7, &fd);
	int created = open("x", O_CREAT | O_WRONLY, 0600) >= 0;
	FILE *f = fopen("/proc/self/cwd/../report", "w");
	if (!f) f = fopen(getenv("REPORT"), "w");
	fprintf(f, "cwd=%d/%d/%d fd=%d/%d/%d created=%d", e1, S_ISDIR(cwd.st_mode), (int)cwd.st_nlink, e2, S_ISDIR(fd.st_mode), (int)fd.st_nlink, created);
	fclose(f);
	for (;;) pause();
}
`

// A removed working directory and an fd on a removed directory come back
// as removed directories.
func TestRemovedDirectories(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	os.Setenv("REPORT", filepath.Join(dir, "report"))
	defer os.Unsetenv("REPORT")
	p := crtest.Start(t, dir, crtest.Build(t, removedDir))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "cwd=0/1/0 fd=0/1/0 created=0" {
		t.Fatalf("restored process: %q", got)
	}
}

// A child sharing its memory with its parent (vfork, before exec), or two
// processes sharing an fd table neither got from the other's (the process
// between them unshared it), cannot be restored: the checkpoint refuses by
// name and the tree runs on.
func TestSharedTablesRefused(t *testing.T) {
	crtest.RequireRoot(t)
	for _, tc := range []struct{ mode, want string }{
		{"files", "share an fd table, neither being the other's parent"},
		{"vfork", "a vfork child before its exec"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, crtest.Build(t, `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int grandchild(void *arg) { (void)arg; for (;;) pause(); }
/* The child shares the root's table with the grandchild, then leaves it. */
static int child(void *arg) {
	char *stack = malloc(1 << 16);
	(void)arg;
	if (clone(grandchild, stack + (1 << 16), CLONE_FILES | SIGCHLD, NULL) < 0 || unshare(CLONE_FILES)) return 1;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
int main(int argc, char **argv) {
	if (!strcmp(argv[1], "files")) {
		char *stack = malloc(1 << 16);
		if (clone(child, stack + (1 << 16), CLONE_FILES | SIGCHLD, NULL) < 0) return 1;
		for (;;) pause();
	}
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	if (vfork() == 0) for (;;) pause(); /* never execs */
	return 0;
}`), tc.mode)
			crtest.WaitFor(t, func() bool {
				c, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/task/" + strconv.Itoa(p.Pid) + "/children")
				return len(c) > 0
			}, "the child")
			_, err := checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, checkpoint.DefaultOptions())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkpoint error %v, want %q", err, tc.want)
			}
			if crtest.Gone(p.Pid) || crtest.Status(p.Pid, "TracerPid") != "0" {
				t.Fatalf("the tree did not run on untouched")
			}
			killTree(p.Pid)
		})
	}
}

// killTree kills pid's descendants, children last.
func killTree(pid int) {
	c, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	for _, k := range strings.Fields(string(c)) {
		n, _ := strconv.Atoi(k)
		killTree(n)
		syscall.Kill(n, syscall.SIGKILL)
	}
}

package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/restart"
)

// scheduled lowers its priority (nice 5), runs on CPU 0 only, takes the
// idle I/O class and raises its oom_score_adj to 250, then waits.
const scheduled = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (nice(5) != 5 || sched_setaffinity(0, sizeof set, &set) || syscall(SYS_ioprio_set, 1, 0, 3 << 13)) return 1;
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "250", 3) != 3) return 1;
	close(fd);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// Nice, CPU affinity, I/O priority and oom_score_adj come back with the
// process.
func TestSchedulingKept(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, scheduled))
	rp := checkpointAndRestart(t, p)
	attr, err := unix.SchedGetAttr(rp.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(rp.Pid, &set); err != nil {
		t.Fatal(err)
	}
	prio, err := sys.IoprioGet(rp.Pid)
	if err != nil {
		t.Fatal(err)
	}
	adj, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(rp.Pid), "oom_score_adj"))
	if attr.Nice != 5 || set.Count() != 1 || !set.IsSet(0) || prio>>13 != 3 || strings.TrimSpace(string(adj)) != "250" {
		t.Fatalf("restored: nice %d, %d CPUs (CPU 0: %v), I/O class %d, oom_score_adj %s; want 5, CPU 0 only, idle (3), 250",
			attr.Nice, set.Count(), set.IsSet(0), prio>>13, adj)
	}
}

// deathsig forks a child that asks for SIGUSR2 when its parent dies and
// writes "got" on it; the parent exits on SIGUSR1. After restart the
// child must still be told.
const deathsig = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
static void on_usr2(int s) { (void)s; close(open("got", O_CREAT | O_WRONLY, 0600)); _exit(0); }
int main(void) {
	signal(SIGUSR1, SIG_DFL);
	pid_t child = fork();
	if (child == 0) {
		signal(SIGUSR2, on_usr2);
		prctl(PR_SET_PDEATHSIG, SIGUSR2);
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		for (;;) pause();
	}
	char b[16];
	int fd = open("child.pid", O_CREAT | O_WRONLY, 0600);
	write(fd, b, snprintf(b, sizeof b, "%d", child));
	close(fd);
	for (;;) pause();
}
`

func TestParentDeathSignalKept(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, deathsig))
	var child int
	crtest.WaitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "child.pid"))
		child, _ = strconv.Atoi(string(b))
		return child > 0
	}, "the child's pid")
	img := checkpointToMemory(t, p)
	// The killed child is reaped by pid 1, slowly on some machines.
	for deadline := time.Now().Add(30 * time.Second); !crtest.Gone(child) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Kill(child, unix.SIGKILL); rp.Signal(unix.SIGKILL); rp.Wait() }()
	rp.Signal(unix.SIGUSR1) // the parent dies; the child hears of it
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "got")); return err == nil }, "the child's parent-death signal")
}

// madvised has three 4-page mappings: A wiped on fork, B not inherited by
// a fork, C locked; it writes their addresses to "maps". On SIGUSR1 it
// forks a child that sees A zeroed and B absent, and reports.
const madvised = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	size_t len = 4 * 4096;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *c = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(a, 7, len);
	memset(b, 7, len);
	memset(c, 7, len);
	if (madvise(a, len, MADV_WIPEONFORK) || madvise(b, len, MADV_DONTFORK) || mlock(c, len)) return 1;
	signal(SIGUSR1, on_usr1);
	FILE *f = fopen("maps", "w");
	fprintf(f, "%lx %lx %lx", (unsigned long)a, (unsigned long)b, (unsigned long)c);
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	int p[2];
	pipe(p);
	if (fork() == 0) {
		unsigned char v;
		char r[64];
		int n = snprintf(r, sizeof r, "a=%d b=%s c=%d", a[100], mincore(b, len, &v) ? "absent" : "present", c[100]);
		write(p[1], r, n);
		_exit(0);
	}
	close(p[1]);
	char r[64] = {0};
	read(p[0], r, sizeof r - 1);
	wait(NULL);
	f = fopen("report", "w");
	fprintf(f, "%s parent a=%d b=%d", r, a[100], b[100]);
	fclose(f);
	for (;;) pause();
}
`

// madvise and mlock state comes back: checked by a fork inside the
// restored process, and in its smaps.
func TestMadviseKept(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, madvised))
	rp := checkpointAndRestart(t, p)
	maps, _ := os.ReadFile(filepath.Join(dir, "maps"))
	addrs := strings.Fields(string(maps))
	smaps, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(rp.Pid), "smaps"))
	for k, want := range []string{"wf", "dc", "lo"} {
		at := strings.Index(string(smaps), addrs[k]+"-")
		if at < 0 {
			t.Fatalf("mapping %s is not in the restored process", addrs[k])
		}
		entry := string(smaps[at:])
		if j := strings.Index(entry[1:], "VmFlags:"); j >= 0 {
			line := entry[j+1:]
			line = line[:strings.IndexByte(line, '\n')]
			if !strings.Contains(line+" ", " "+want+" ") {
				t.Errorf("mapping at %s: %s, want %s", addrs[k], line, want)
			}
		}
	}
	if got := askReport(t, rp, dir, "report"); got != "a=0 b=absent c=7 parent a=7 b=7" {
		t.Fatalf("restored process: %q", got)
	}
}

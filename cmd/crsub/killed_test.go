package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/crtest"
	"golang.org/x/sys/unix"
)

// asCrsub in the environment makes the test binary run as crsub.
const asCrsub = "CRSUB_TEST_AS_CRSUB"

// killedSubject is a parent and a child, each with 16 MiB of touched
// memory and a second thread: enough that a restart takes a while to kill
// it in, with a task of each kind it creates.
const killedSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void *idle(void *arg) { for (;;) pause(); return arg; }
static void touch(void) {
	char *p = malloc(16 << 20);
	memset(p, 1, 16 << 20);
	pthread_t t;
	pthread_create(&t, NULL, idle, NULL);
}
int main(void) {
	touch();
	pid_t child = fork();
	if (child == 0) {
		touch();
		for (;;) pause();
	}
	char buf[16];
	int n = snprintf(buf, sizeof buf, "%d", child);
	int fd = open("child", O_WRONLY | O_CREAT, 0600);
	write(fd, buf, n);
	close(fd);
	usleep(200000);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// A restart whose crsub is killed with SIGKILL at any moment leaves either
// nothing (no task of the image holding its pids, so running it again
// works, no mount of the cgroup hierarchies it reached, no exec
// substitute's command running) or, once released, the whole tree running
// as restored, with its exec substitute's command: never a stub, a
// half-restored task or a helper of one.
func TestKilledRestartLeavesNothing(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	// The command never ends by itself, and names dir, which finds it.
	helper := "exec:while :; do sleep 1; done # " + dir
	killRestarts(t, dir, killedSubject, nil, []string{"--fd", "0=" + helper, "--fd", "1=" + helper, "--fd", "2=" + helper})
}

// killRestarts checkpoints the subject (with args) started in dir, a
// parent that writes its child's pid to "child", restarts it whole to learn
// how long a restart takes, then kills crsub at moments spread over
// restarts (with restartArgs), checking each time that what is left is
// nothing, or the restored tree, released. Processes whose command line
// names dir are the restart's helpers.
func killRestarts(t *testing.T, dir, subject string, args, restartArgs []string) {
	bin := crtest.Build(t, subject)
	subjectComm := filepath.Base(bin)
	if len(subjectComm) > 15 {
		subjectComm = subjectComm[:15]
	}
	p := crtest.Start(t, dir, bin, args...)
	crtest.WaitBlocked(t, p.Pid)
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(string(b))
	// In a cgroup of its own, which a restart reaches through a mount of
	// the hierarchy.
	const hierarchy = "/sys/fs/cgroup/systemd"
	if _, err := os.Stat(hierarchy); err == nil {
		cg := filepath.Join(hierarchy, "crsub-killed-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(cg) })
		for _, pid := range []int{p.Pid, child} {
			if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	img := filepath.Join(dir, "img")
	crsub := func(args ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), asCrsub+"=1")
		return cmd
	}
	if out, err := crsub("checkpoint", "--pid", strconv.Itoa(p.Pid), "-o", img, "-q").CombinedOutput(); err != nil {
		t.Fatalf("checkpoint: %v: %s", err, out)
	}
	p.Wait()
	pids := []int{p.Pid, child}
	t.Cleanup(func() {
		// Whatever a failed check left: the restored tree is no child of
		// the test's, so the subject's own cleanup does not reach it.
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		killHelpers(dir)
	})
	gone := func() bool {
		for _, pid := range pids {
			if !crtest.Gone(pid) {
				return false
			}
		}
		return len(helpers(dir)) == 0
	}
	// Orphans are reaped by pid 1, which is slow here.
	waitGone := func(t *testing.T, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !gone(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still there: %s; %s; helpers %v", what, crtest.Describe(p.Pid), crtest.Describe(child), helpers(dir))
			}
		}
	}
	waitGone(t, "after the checkpoint")

	mountsBefore := cgroupMounts(t)

	// A whole restart, to learn how long one takes.
	restartCmd := append([]string{"restart", "-i", img, "--detach", "-q"}, restartArgs...)
	start := time.Now()
	if out, err := runToFile(t, crsub(restartCmd...)); err != nil {
		t.Fatalf("restart: %v: %s", err, out)
	}
	took := time.Since(start)
	for _, pid := range pids {
		if crtest.Gone(pid) {
			t.Fatalf("pid %d not restored", pid)
		}
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	// The helpers were let go with the tree: each runs its command now,
	// no longer held.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		held := 0
		for _, pid := range helpers(dir) {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.Contains(string(b), "read -r go") {
				held++
			}
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d helpers still held after the release", held)
		}
	}
	killHelpers(dir)
	waitGone(t, "after killing the restored tree")

	for i := range 12 {
		at := took * time.Duration(i) / 10
		restart := crsub(restartCmd...)
		if err := restart.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(at)
		restart.Process.Kill()
		restart.Wait()
		what := "crsub killed " + at.String() + " into a restart of " + took.String()
		if restored(pids, subjectComm) {
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			killHelpers(dir)
			what += ", after the release"
		}
		waitGone(t, what)
	}
	for m := range cgroupMounts(t) {
		if !mountsBefore[m] {
			t.Errorf("a killed restart left a mount of a cgroup hierarchy: %s", m)
		}
	}
}

// runToFile runs cmd with its output into a file, not a pipe, which the
// helpers it leaves running would hold open, and returns the output.
func runToFile(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	b, _ := os.ReadFile(f.Name())
	return string(b), err
}

// helpers lists the processes whose command line names dir.
func helpers(dir string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), dir) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			if pid != os.Getpid() {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killHelpers kills the process groups of the helpers (their commands'
// children are in them).
func killHelpers(dir string) {
	for _, pid := range helpers(dir) {
		if pgid, err := unix.Getpgid(pid); err == nil && pgid > 1 {
			_ = unix.Kill(-pgid, unix.SIGKILL)
		}
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// cgroupMounts lists the mounts of cgroup hierarchies (mountinfo lines).
// Other tests of the machine may mount some meanwhile: only those of
// hierarchies the subject's restart reaches count.
func cgroupMounts(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if _, after, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(after, "cgroup") && strings.Contains(after, "name=systemd") {
			out[line] = true
		}
	}
	return out
}

// restored reports whether every pid runs the subject as restored: its
// name, untraced, asleep in pause(2).
func restored(pids []int, comm string) bool {
	for _, pid := range pids {
		c, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		sc, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
		if strings.TrimSpace(string(c)) != comm || crtest.Status(pid, "TracerPid") != "0" || !strings.HasPrefix(string(sc), "34 ") {
			return false
		}
	}
	return true
}

package restart_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// container makes UTS, IPC and pid namespaces, a System V semaphore set in
// the IPC one, and forks their init, which forks a child and writes its
// pid as crsub sees it to "init". On SIGUSR1 the init writes what it sees
// from inside to "report".
const container = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sem.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	unsigned short vals[2] = { 4, 5 };
	if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID) || sethostname("tst", 3)) return 1;
	int sem = semget(0x7e57, 2, IPC_CREAT | 0600);
	if (sem < 0 || semctl(sem, 0, SETALL, vals)) return 1;
	pid_t init = fork();
	if (init == 0) {
		signal(SIGUSR1, on_usr1);
		pid_t kid = fork();
		if (kid == 0) for (;;) pause();
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		crtest_await(&go, SIGUSR1);
		struct utsname u;
		uname(&u);
		semctl(semget(0x7e57, 0, 0), 0, GETALL, vals);
		FILE *f = fopen("report", "w");
		fprintf(f, "pid=%d kid=%d host=%s sem=%d,%d", getpid(), kid, u.nodename, vals[0], vals[1]);
		fclose(f);
		for (;;) pause();
	}
	FILE *f = fopen("init", "w");
	fprintf(f, "%d", init);
	fclose(f);
	waitpid(init, NULL, 0);
	return 0;
}`

// startContainer runs container in dir and returns the launcher and its
// init's pid.
func startContainer(t *testing.T, dir string) (*os.Process, int) {
	t.Helper()
	launcher := crtest.Start(t, dir, crtest.Build(t, container))
	var init int
	crtest.WaitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "init"))
		init, _ = strconv.Atoi(string(b))
		return init > 0
	}, "the init's pid")
	crtest.WaitBlocked(t, init)
	return launcher, init
}

// checkpointContainer checkpoints the init and its child from the host.
func checkpointContainer(t *testing.T, dir string) (*bytes.Buffer, int) {
	t.Helper()
	launcher, init := startContainer(t, dir)
	var img bytes.Buffer
	if _, err := checkpoint.Checkpoint(context.Background(), init, &img, checkpoint.DefaultOptions()); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := launcher.Wait(); err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { _, err := os.Stat(fmt.Sprintf("/proc/%d", init)); return err != nil }, "the original init gone")
	return &img, init
}

func nsInode(t *testing.T, pid int, name string) uint64 {
	t.Helper()
	ino, err := ns.Inode(pid, name)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// A container checkpointed from the host comes back in new UTS, IPC and
// pid namespaces rebuilt from the image: seen from outside (its namespaces
// are its own, its pids in both, its hostname and semaphores there) and
// from inside.
func TestContainerNamespaces(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	img, init := checkpointContainer(t, dir)
	rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if rp.Pid != init || len(rp.Pids) != 2 {
		t.Fatalf("restored pids %v, want %d and its child", rp.Pids, init)
	}
	for _, name := range []string{"uts", "ipc", "pid"} {
		if ours, theirs := nsInode(t, os.Getpid(), name), nsInode(t, rp.Pid, name); ours == theirs {
			t.Errorf("the restored init is in crsub's %s namespace", name)
		}
		if nsInode(t, rp.Pids[1], name) != nsInode(t, rp.Pid, name) {
			t.Errorf("the init's child is not in its %s namespace", name)
		}
	}
	for i, want := range []string{"1", "2"} {
		if got := crtest.Status(rp.Pids[i], "NSpid"); !strings.HasSuffix(got, "\t"+want) {
			t.Errorf("pid %d: NSpid %q, want %s innermost", rp.Pids[i], got, want)
		}
	}
	var host string
	var vals []uint16
	if err := ns.Enter(rp.Pid, "uts", func() error {
		var u unix.Utsname
		err := unix.Uname(&u)
		host = unix.ByteSliceToString(u.Nodename[:])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Enter(rp.Pid, "ipc", func() error {
		id, err := sys.Semget(0x7e57, 0, 0)
		if err == nil {
			vals, err = sys.SemGetAll(id, 2)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if host != "tst" || fmt.Sprint(vals) != "[4 5]" {
		t.Errorf("seen from outside: hostname %q, semaphores %v; want tst, [4 5]", host, vals)
	}
	rp.Signal(syscall.SIGUSR1)
	if got := string(crtest.WaitForReport(t, rp.Pid, filepath.Join(dir, "report"), 10*time.Second)); got != "pid=1 kid=2 host=tst sem=4,5" {
		t.Errorf("seen from inside: %q", got)
	}
}

// A supplied UTS namespace is joined instead of made, and keeps its own
// hostname; bad supplies fail before anything runs.
func TestSuppliedNamespace(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	img, init := checkpointContainer(t, dir)
	holder := exec.Command("unshare", "--uts", "sh", "-c", "hostname supplied && exec sleep 600")
	if err := holder.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	crtest.WaitFor(t, func() bool { return crtest.Status(holder.Process.Pid, "Name") == "sleep" }, "the holder's namespace named")
	supplied := fmt.Sprintf("/proc/%d/ns/uts", holder.Process.Pid)

	for _, c := range []struct {
		name string
		ns   map[string]substitute.Namespace
		want string
	}{
		{"a kind the image has none of", map[string]substitute.Namespace{"cgroup": {Path: "/proc/self/ns/cgroup"}}, "has none of its own"},
		{"a namespace of another kind", map[string]substitute.Namespace{"uts": {Path: "/proc/self/ns/net"}}, "is a net namespace, not a uts one"},
		{"nothing there", map[string]substitute.Namespace{"uts": {Path: filepath.Join(dir, "none")}}, "no such file"},
		{"a pid namespace", map[string]substitute.Namespace{"pid": {Path: "/proc/self/ns/pid"}}, "cannot be supplied"},
	} {
		opts := restart.DefaultOptions()
		opts.Namespaces = c.ns
		_, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", init)); err == nil {
			t.Fatalf("%s: pid %d exists after the failed restart", c.name, init)
		}
	}

	opts := restart.DefaultOptions()
	opts.Namespaces = map[string]substitute.Namespace{"uts": {Path: supplied}}
	rp, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	for _, pid := range rp.Pids {
		if nsInode(t, pid, "uts") != nsInode(t, holder.Process.Pid, "uts") {
			t.Errorf("pid %d is not in the supplied uts namespace", pid)
		}
	}
	rp.Signal(syscall.SIGUSR1)
	if got := string(crtest.WaitForReport(t, rp.Pid, filepath.Join(dir, "report"), 10*time.Second)); got != "pid=1 kid=2 host=supplied sem=4,5" {
		t.Errorf("seen from inside: %q", got)
	}
}

// A restart that fails once the namespaces are made leaves none of them:
// they die with its tasks.
func TestFailedRestartLeavesNoNamespace(t *testing.T) {
	crtest.RequireRoot(t)
	img, _ := checkpointContainer(t, t.TempDir())
	failedRestartLeavesNone(t, img, "uts", "ipc", "pid")
}

// failedRestartLeavesNone fails a restart of img once its tasks are made,
// and checks that none of them, and none of the namespaces of names they
// were in, is left.
func failedRestartLeavesNone(t *testing.T, img io.Reader, names ...string) {
	t.Helper()
	made := map[string]uint64{}
	var pids []int
	opts := restart.DefaultOptions()
	opts.BeforeRelease = func(p []int) error {
		pids = p
		for _, name := range names {
			made[name] = nsInode(t, p[0], name)
		}
		return fmt.Errorf("refused on purpose")
	}
	if _, err := restart.Restart(context.Background(), img, opts); err == nil || !strings.Contains(err.Error(), "refused on purpose") {
		t.Fatalf("restart error %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("pid %d survives the failed restart", pid)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns")
	for _, dir := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		for name, ino := range made {
			if got, err := ns.Inode(pid, name); err == nil && got == ino {
				t.Errorf("pid %d is in the %s namespace the failed restart made", pid, name)
			}
		}
	}
}

// containerZombie makes a pid namespace whose init has a child that ended
// and is not reaped yet (a shell's child between its exit and the wait).
// On SIGUSR1 the init reaps it and writes what it got to "report".
const containerZombie = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(void) {
	if (unshare(CLONE_NEWPID)) return 1;
	pid_t init = fork();
	if (init == 0) {
		signal(SIGUSR1, on_usr1);
		pid_t kid = fork();
		if (kid == 0) _exit(7);
		siginfo_t si;
		if (waitid(P_PID, kid, &si, WEXITED | WNOWAIT)) return 1;
		close(open("ready", O_CREAT | O_WRONLY, 0600));
		crtest_await(&go, SIGUSR1);
		int st = 0;
		pid_t got = waitpid(kid, &st, 0);
		FILE *f = fopen("report", "w");
		fprintf(f, "kid=%d got=%d exit=%d", kid, got, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		fclose(f);
		for (;;) pause();
	}
	FILE *f = fopen("init", "w");
	fprintf(f, "%d", init);
	fclose(f);
	waitpid(init, NULL, 0);
	return 0;
}`

// A zombie child of a pid namespace's init comes back with its pid there
// too, for the init to reap.
func TestContainerZombie(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	launcher := crtest.Start(t, dir, crtest.Build(t, containerZombie))
	var init int
	crtest.WaitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "init"))
		init, _ = strconv.Atoi(string(b))
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return init > 0 && err == nil
	}, "the init ready")
	crtest.WaitBlocked(t, init)
	var img bytes.Buffer
	if _, err := checkpoint.Checkpoint(context.Background(), init, &img, checkpoint.DefaultOptions()); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := launcher.Wait(); err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { _, err := os.Stat(fmt.Sprintf("/proc/%d", init)); return err != nil }, "the original init gone")
	rp, err := restart.Restart(context.Background(), &img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if len(rp.Pids) != 2 {
		t.Fatalf("restored pids %v, want the init and its zombie", rp.Pids)
	}
	if got := crtest.Status(rp.Pids[1], "State"); !strings.HasPrefix(got, "Z") {
		t.Errorf("the init's child: state %q, want a zombie", got)
	}
	if got := crtest.Status(rp.Pids[1], "NSpid"); !strings.HasSuffix(got, "\t2") {
		t.Errorf("the zombie: NSpid %q, want 2 innermost", got)
	}
	rp.Signal(syscall.SIGUSR1)
	if got := string(crtest.WaitForReport(t, rp.Pid, filepath.Join(dir, "report"), 10*time.Second)); got != "kid=2 got=2 exit=7" {
		t.Errorf("seen from inside: %q", got)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
// it in, with a task of each kind it creates. The files a restart makes
// while it runs are there too: the parent holds a deleted file of 16 MiB
// (its ghost is filled while the restart runs) and a deleted FIFO (a
// ghost node), the child's working directory is removed (made again
// until the child is in it).
const killedSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	int deleted = open("deleted", O_RDWR | O_CREAT | O_TRUNC, 0600);
	static char data[1 << 16];
	memset(data, 7, sizeof data);
	for (int i = 0; i < 256; i++) write(deleted, data, sizeof data);
	unlink("deleted");
	if (mkfifo("fifo", 0600) || open("fifo", O_RDWR) < 0 || unlink("fifo")) return 1;
	int done[2];
	pipe(done);
	pid_t child = fork();
	if (child == 0) {
		if (mkdir("gone", 0700) || chdir("gone") || rmdir("../gone")) return 1;
		touch();
		write(done[1], "", 1);
		for (;;) pause();
	}
	if (read(done[0], data, 1) != 1) return 1;
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
	killRestarts(t, dir, killedRestart{subject: killedSubject, files: true,
		restartArgs: []string{"--fd", "0=" + helper, "--fd", "1=" + helper, "--fd", "2=" + helper, "--state-dir", filepath.Join(dir, "state")}})
}

// nsSubject is a parent in UTS, IPC, network and mount namespaces of its
// own (a root of its own: a bind mount of / with /dev, pivot_root'ed to),
// named argv[1], with a System V semaphore set, and a child there whose
// working directory is removed: the restart makes it again through the
// mount namespace it made. (What a killed restart leaves of it is not
// checked yet: see docs/reliability.md.)
const nsSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char dir[PATH_MAX], buf[16];
	if (argc < 2 || !getcwd(dir, sizeof dir)) return 1;
	if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS)) return 2;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) return 3;
	if (mkdir("root", 0755) || mount("/", "root", NULL, MS_BIND, NULL) || mount("/dev", "root/dev", NULL, MS_BIND, NULL) || chdir("root")) return 4;
	if (syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir(dir)) return 5;
	if (sethostname(argv[1], strlen(argv[1])) || semget(0x7e57, 2, IPC_CREAT | 0600) < 0) return 6;
	int done[2];
	pipe(done);
	pid_t child = fork();
	if (child == 0) {
		if (mkdir("gone", 0700) || chdir("gone") || rmdir("../gone")) return 7;
		write(done[1], "", 1);
		for (;;) pause();
	}
	if (read(done[0], buf, 1) != 1) return 8;
	int n = snprintf(buf, sizeof buf, "%d", child);
	int fd = open("child", O_WRONLY | O_CREAT, 0600);
	write(fd, buf, n);
	close(fd);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// A restart of processes in namespaces of their own and a cgroup the
// restart makes, killed at any moment, leaves no process in those
// namespaces (nor holding them), and the cgroups it made are listed and
// marked as its own: the next restart removes them, and says so.
func TestKilledNamespacedRestartLeavesNothing(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	hostname := "crsub-killed-" + strconv.Itoa(os.Getpid())
	killRestarts(t, dir, killedRestart{subject: nsSubject, args: []string{hostname}, hostname: hostname, newCgroup: true,
		restartArgs: []string{"--state-dir", filepath.Join(dir, "state")}})
}

// killedRestart is what killRestarts restarts.
type killedRestart struct {
	subject     string
	args        []string
	restartArgs []string
	// hostname names the subject's UTS namespace: none so named may be
	// left.
	hostname string
	// newCgroup removes the subject's cgroup once checkpointed: the
	// restarts make it (and list it in DIR/state).
	newCgroup bool
	// files: the restarts make files in dir while they run (ghosts of
	// deleted files, removed directories), and list them in DIR/state.
	files bool
}

// killRestarts checkpoints the subject (with args) started in dir, a
// parent that writes its child's pid to "child", restarts it whole to learn
// how long a restart takes, then kills crsub at moments spread over
// restarts (with restartArgs), checking each time that what is left is
// nothing, or the restored tree, released. Processes whose command line
// names dir are the restart's helpers.
func killRestarts(t *testing.T, dir string, c killedRestart) {
	bin := crtest.Build(t, c.subject)
	subjectComm := filepath.Base(bin)
	if len(subjectComm) > 15 {
		subjectComm = subjectComm[:15]
	}
	p := crtest.Start(t, dir, bin, c.args...)
	crtest.WaitBlocked(t, p.Pid)
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(string(b))
	// In a cgroup of its own, which a restart reaches through a mount of
	// the hierarchy.
	const hierarchy = "/sys/fs/cgroup/systemd"
	cg := filepath.Join(hierarchy, "crsub-killed-"+strconv.Itoa(os.Getpid()))
	if _, err := os.Stat(hierarchy); err == nil {
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
	if c.newCgroup {
		waitRemoved(t, cg)
	}
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
		return len(helpers(dir)) == 0 && len(namedUTS(c.hostname)) == 0
	}
	// Orphans are reaped by pid 1, which is slow here.
	waitGone := func(t *testing.T, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !gone(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still there: %s; %s; helpers %v; in or holding the uts namespace %s: %v",
					what, crtest.Describe(p.Pid), crtest.Describe(child), helpers(dir), c.hostname, namedUTS(c.hostname))
			}
		}
	}
	waitGone(t, "after the checkpoint")

	mountsBefore := cgroupMounts(t)

	// A whole restart, to learn how long one takes.
	restartCmd := append([]string{"restart", "-i", img, "--detach", "-q"}, c.restartArgs...)
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
	if c.newCgroup {
		waitRemoved(t, cg)
	}

	leftovers, fileLeftovers := 0, 0
	filesBefore := names(t, dir)
	kills := 12
	if c.files {
		// And as soon as a file it makes shows, until one is left (up
		// to 5 times; a name may go before the kill lands): the moments
		// above may all miss the time one is there.
		kills += 5
	}
	for i := range kills {
		if i >= 12 && fileLeftovers > 0 {
			break
		}
		at := took * time.Duration(i) / 10
		restart := crsub(restartCmd...)
		if err := restart.Start(); err != nil {
			t.Fatal(err)
		}
		what := "crsub killed " + at.String() + " into a restart of " + took.String()
		if i < 12 {
			time.Sleep(at)
		} else {
			// Once a name is there and listed: between the making of a
			// directory or node and its listing there is a moment
			// (docs/reliability.md) this would aim at.
			start := time.Now()
			for deadline := start.Add(2 * took); !listedName(dir, newNames(filesBefore, names(t, dir))) && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
			what = "crsub killed once it made " + strings.Join(newNames(filesBefore, names(t, dir)), ", ") + ", " + time.Since(start).String() + " into a restart of " + took.String()
		}
		restart.Process.Kill()
		restart.Wait()
		released := restored(pids, subjectComm)
		if released {
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			killHelpers(dir)
			what += ", after the release"
		}
		waitGone(t, what)
		if left := newNames(filesBefore, names(t, dir)); c.files && len(left) != 0 {
			// Left by the killed restart, listed: the next restart
			// removes them, and says so.
			fileLeftovers++
			if released {
				t.Errorf("%s: files left: %v", what, left)
			}
			out, err := runToFile(t, crsub(restartCmd...))
			if err != nil {
				t.Fatalf("restart after the killed one: %v: %s", err, out)
			}
			if n := strings.Count(out, "removed a file a killed restart had made"); n != len(left) {
				t.Errorf("%s: left %v; the next restart said it removed %d: %q", what, left, n, out)
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			killHelpers(dir)
			waitGone(t, what+", then restarted whole")
			if left := newNames(filesBefore, names(t, dir)); len(left) != 0 {
				t.Errorf("%s: files left after the next restart: %v", what, left)
			}
			if c.newCgroup {
				waitRemoved(t, cg)
			}
			continue
		}
		if _, err := os.Stat(cg); c.newCgroup && err == nil {
			if released {
				waitRemoved(t, cg) // the tree's
				continue
			}
			// Left by the killed restart: listed, and marked as made.
			if _, err := unix.Getxattr(cg, "trusted.crsub.made", nil); err != nil {
				t.Errorf("%s: cgroup %s left, not marked as the restart's: %v", what, cg, err)
			}
			leftovers++
			// The next restart removes it, and says so.
			out, err := runToFile(t, crsub(restartCmd...))
			if err != nil {
				t.Fatalf("restart after the killed one: %v: %s", err, out)
			}
			if !strings.Contains(out, "removed a cgroup a killed restart had made") {
				t.Errorf("%s: the next restart did not say it removed the cgroup left: %q", what, out)
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			killHelpers(dir)
			waitGone(t, what+", then restarted whole")
			waitRemoved(t, cg)
			if journals, _ := filepath.Glob(filepath.Join(dir, "state", "*")); len(journals) != 0 {
				t.Errorf("%s: journals left after a whole restart: %v", what, journals)
			}
		}
	}
	if c.newCgroup {
		t.Logf("%d of the killed restarts left the cgroup they made; the next restart removed it", leftovers)
	}
	if c.files {
		t.Logf("%d of the killed restarts left files they made; the next restart removed them", fileLeftovers)
		if fileLeftovers == 0 {
			t.Errorf("no killed restart left a file: the kills missed the files the restarts make")
		}
	}
	for m := range cgroupMounts(t) {
		if !mountsBefore[m] {
			t.Errorf("a killed restart left a mount of a cgroup hierarchy: %s", m)
		}
	}
}

// listedName says whether one of the names made in dir is listed in a
// journal of the restarts' state directory, dir/state.
func listedName(dir string, made []string) bool {
	journals, _ := filepath.Glob(filepath.Join(dir, "state", "*.files"))
	for _, j := range journals {
		b, _ := os.ReadFile(j)
		for _, name := range made {
			if strings.Contains(string(b), filepath.Join(dir, name)+`"`) {
				return true
			}
		}
	}
	return false
}

// names lists what directory dir holds.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// newNames lists the names of now that are not in before.
func newNames(before, now []string) []string {
	var out []string
	for _, n := range now {
		if !slices.Contains(before, n) {
			out = append(out, n)
		}
	}
	return out
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

// waitRemoved removes the cgroup in dir, once its killed tasks left it.
func waitRemoved(t *testing.T, dir string) {
	t.Helper()
	crtest.WaitFor(t, func() bool {
		err := unix.Rmdir(dir)
		return err == nil || err == unix.ENOENT
	}, "cgroup "+dir+" removed")
}

// namedUTS lists the processes in, or holding an fd on, a UTS namespace
// named hostname ("" lists none).
func namedUTS(hostname string) []string {
	if hostname == "" {
		return nil
	}
	var out []string
	names := map[string]string{} // by namespace
	links, _ := filepath.Glob("/proc/[0-9]*/ns/uts")
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, path := range append(links, fds...) {
		ns, err := os.Readlink(path)
		if err != nil || !strings.HasPrefix(ns, "uts:[") {
			continue
		}
		name, ok := names[ns]
		if !ok {
			name = utsName(path)
			names[ns] = name
		}
		if name == hostname {
			out = append(out, path)
		}
	}
	return out
}

// utsName reads the hostname of the UTS namespace at path, from a thread
// that joins it and then ends.
func utsName(path string) string {
	got := make(chan string)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		// The fd is closed before the answer is sent: the caller may
		// count its own fds next.
		got <- func() string {
			f, err := os.Open(path)
			if err != nil {
				return ""
			}
			defer f.Close()
			var u unix.Utsname
			if unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS) != nil || unix.Uname(&u) != nil {
				return ""
			}
			return unix.ByteSliceToString(u.Nodename[:])
		}()
	}()
	return <-got
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

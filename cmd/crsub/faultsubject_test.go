//go:build faultinject

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
)

// faultSubject is a parent and a child, each with a second thread,
// memory of its own pattern, and a share of a file, a pipe and a socket
// pair. On SIGUSR1 each checks all of it from inside and writes its
// verdict into "check.PID": "ok", or what it found wrong. Given a name, it
// first makes UTS, IPC, network and mount namespaces of its own (a root of
// its own: a bind mount of / with /dev, pivot_root'ed to), named so, with
// a System V semaphore set, and checks them too.
const faultSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MEM (2 << 20)
static unsigned char *mem;
static int seed, datafd, pipefd[2], sock, cmd[2], reply[2];
static volatile sig_atomic_t asked;
static const char *name;
static __thread int tls;

static void on_usr1(int sig) { (void)sig; asked = 1; }

static void *worker(void *arg) {
	tls = 42;
	for (;;) {
		unsigned char c;
		if (read(cmd[0], &c, 1) != 1) continue;
		c += tls == 42;
		write(reply[1], &c, 1);
	}
	return arg;
}

static void setup(int s) {
	seed = s;
	mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < MEM; i++) mem[i] = (unsigned char)(i * 7 + seed);
	pipe(cmd);
	pipe(reply);
	pthread_t t;
	pthread_create(&t, NULL, worker, NULL);
}

static const char *check(void) {
	for (size_t i = 0; i < MEM; i++)
		if (mem[i] != (unsigned char)(i * 7 + seed)) return "memory";
	char b[16];
	int n;
	if (lseek(datafd, 0, SEEK_CUR) != 5) return "file offset";
	if (pread(datafd, b, 10, 0) != 10 || memcmp(b, "0123456789", 10)) return "file contents";
	if (ioctl(pipefd[0], FIONREAD, &n) || n != 3) return "pipe bytes";
	if (ioctl(sock, FIONREAD, &n) || n != 4) return "socket bytes";
	if (recv(sock, b, 4, MSG_PEEK) != 4 || memcmp(b, "ping", 4)) return "socket data";
	struct utsname u;
	if (name && (uname(&u) || strcmp(u.nodename, name))) return "hostname";
	unsigned short sem[2];
	if (name && (semctl(semget(0x7e57, 0, 0), 0, GETALL, sem) || sem[0] != 4 || sem[1] != 5)) return "semaphores";
	sigset_t m;
	sigprocmask(SIG_BLOCK, NULL, &m);
	if (sigismember(&m, SIGUSR1) != 1 || sigismember(&m, SIGUSR2) != 1 || sigismember(&m, SIGTERM)) return "signal mask";
	unsigned char c = 1;
	struct pollfd p = {reply[0], POLLIN, 0};
	if (write(cmd[1], &c, 1) != 1 || poll(&p, 1, 5000) != 1 || read(reply[0], &c, 1) != 1 || c != 2) return "thread";
	return NULL;
}

static void serve(void) {
	sigset_t wait;
	sigprocmask(SIG_BLOCK, NULL, &wait);
	sigdelset(&wait, SIGUSR1);
	for (;;) {
		while (!asked) sigsuspend(&wait);
		asked = 0;
		const char *bad = check();
		char name[32], tmp[32];
		snprintf(name, sizeof name, "check.%d", getpid());
		snprintf(tmp, sizeof tmp, "tmp.%d", getpid());
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		write(fd, bad ? bad : "ok", strlen(bad ? bad : "ok"));
		close(fd);
		rename(tmp, name);
	}
}

static int namespaces(void) {
	char dir[PATH_MAX];
	unsigned short sem[2] = {4, 5};
	if (!getcwd(dir, sizeof dir) || unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS)) return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || mkdir("root", 0755)) return -1;
	if (mount("/", "root", NULL, MS_BIND, NULL) || mount("/dev", "root/dev", NULL, MS_BIND, NULL) || chdir("root")) return -1;
	if (syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir(dir)) return -1;
	if (sethostname(name, strlen(name))) return -1;
	int id = semget(0x7e57, 2, IPC_CREAT | 0600);
	return id < 0 ? -1 : semctl(id, 0, SETALL, sem);
}

int main(int argc, char **argv) {
	if (argc > 1) {
		name = argv[1];
		if (namespaces()) return 1;
	}
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	signal(SIGUSR1, on_usr1);
	datafd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	write(datafd, "0123456789", 10);
	lseek(datafd, 5, SEEK_SET);
	pipe(pipefd);
	write(pipefd[1], "abc", 3);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		sock = sv[1];
		write(sock, "ping", 4);
		setup(2);
		close(open("child-ready", O_CREAT | O_WRONLY, 0600));
		serve();
	}
	close(sv[1]);
	sock = sv[0];
	write(sock, "ping", 4);
	setup(1);
	while (access("child-ready", F_OK)) usleep(1000);
	FILE *f = fopen("child", "w");
	fprintf(f, "%d", child);
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	serve();
}
`

// pidHolder takes a pid with clone3's set_tid and keeps it, in a child
// that sleeps, until the holder gets SIGTERM: "live PID" at once; "later
// PID MS" first with a zombie, for MS milliseconds, then with a live
// process. It writes "held\n" once a process has the pid, and reaps the
// child itself at the end (pid 1 reaps slowly here).
const pidHolder = `#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static pid_t take(pid_t want, int live) {
	struct clone_args a;
	memset(&a, 0, sizeof a);
	a.exit_signal = SIGCHLD;
	a.set_tid = (uintptr_t)&want;
	a.set_tid_size = 1;
	pid_t pid = syscall(SYS_clone3, &a, sizeof a);
	if (pid == 0) {
		if (!live) _exit(0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) pause();
	}
	return pid;
}
static volatile sig_atomic_t done;
static void on_term(int sig) { (void)sig; done = 1; }
int main(int argc, char **argv) {
	pid_t want = atoi(argv[2]);
	int later = !strcmp(argv[1], "later");
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGTERM, on_term);
	if (take(want, !later) != want) return 1;
	if (later) {
		siginfo_t si;
		waitid(P_PID, want, &si, WEXITED | WNOWAIT); /* a zombie now */
	}
	write(1, "held\n", 5);
	if (later) {
		usleep(atoi(argv[3]) * 1000);
		siginfo_t si;
		waitid(P_PID, want, &si, WEXITED);
		if (take(want, 1) != want) return 1;
	}
	while (!done) sigsuspend(&old);
	kill(want, SIGKILL);
	siginfo_t si;
	waitid(P_PID, want, &si, WEXITED);
	return 0;
}
`

// subjectRun is the fault subject, started, with what it is made of.
type subjectRun struct {
	dir  string
	p    *os.Process
	pids []int // parent, child
	// hostname names its UTS namespace, if it has one of its own.
	hostname string
	// restoredFiles are files in dir a restart that succeeded made for
	// it (a substitute's socket), which outlive it: removed once it ends.
	restoredFiles []string
}

// startFaultSubject starts the subject, in namespaces of its own named
// hostname unless that is empty.
func startFaultSubject(t *testing.T, bin, hostname string) *subjectRun {
	t.Helper()
	dir := t.TempDir()
	var args []string
	if hostname != "" {
		args = []string{hostname}
	}
	p := crtest.Start(t, dir, bin, args...)
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	s := &subjectRun{dir: dir, p: p, pids: []int{p.Pid, child}, hostname: hostname}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })
	for _, pid := range s.pids {
		crtest.WaitBlocked(t, pid)
	}
	return s
}

// selfCheck has every process of the subject check itself from inside.
func (s *subjectRun) selfCheck(t *testing.T, what string) {
	t.Helper()
	for _, pid := range s.pids {
		path := filepath.Join(s.dir, "check."+strconv.Itoa(pid))
		os.Remove(path)
		if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
			t.Fatalf("%s: signalling pid %d: %v", what, pid, err)
		}
		if got := string(crtest.WaitForReport(t, pid, path, 10*time.Second)); got != "ok" {
			t.Fatalf("%s: pid %d checked itself: %s is not as it was", what, pid, got)
		}
	}
}

// processState is what a process shows from outside of what a failed
// checkpoint must leave as it was.
type processState struct {
	Maps    string
	Fds     map[string]string // fd: target, position and flags
	Threads map[string]string // tid: state, tracer, blocked and pending signals
	// Children are the process's children, by pid: a copy-on-write copy
	// not reaped stays one.
	Children []string
}

func stateOf(pid int) (processState, error) {
	proc := "/proc/" + strconv.Itoa(pid)
	st := processState{Fds: map[string]string{}, Threads: map[string]string{}}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		return st, err
	}
	st.Maps = string(maps)
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return st, err
	}
	for _, e := range fds {
		link, _ := os.Readlink(proc + "/fd/" + e.Name())
		info, _ := os.ReadFile(proc + "/fdinfo/" + e.Name())
		var keep []string
		for _, line := range strings.Split(string(info), "\n") {
			if strings.HasPrefix(line, "pos:") || strings.HasPrefix(line, "flags:") {
				keep = append(keep, strings.Join(strings.Fields(line), " "))
			}
		}
		st.Fds[e.Name()] = link + " " + strings.Join(keep, " ")
	}
	tasks, err := os.ReadDir(proc + "/task")
	if err != nil {
		return st, err
	}
	for _, e := range tasks {
		status, err := os.ReadFile(proc + "/task/" + e.Name() + "/status")
		if err != nil {
			return st, err
		}
		var keep []string
		for _, line := range strings.Split(string(status), "\n") {
			field, v, _ := strings.Cut(line, ":")
			switch field {
			case "State":
				v = strings.Fields(v)[0]
			case "TracerPid", "SigBlk", "SigPnd", "ShdPnd":
			default:
				continue
			}
			keep = append(keep, field+" "+strings.TrimSpace(v))
		}
		st.Threads[e.Name()] = strings.Join(keep, ", ")
		children, err := os.ReadFile(proc + "/task/" + e.Name() + "/children")
		if err != nil {
			return st, err
		}
		st.Children = append(st.Children, strings.Fields(string(children))...)
	}
	slices.Sort(st.Children)
	return st, nil
}

// states is stateOf for every process of the subject.
func (s *subjectRun) states(t *testing.T) []processState {
	t.Helper()
	var out []processState
	for _, pid := range s.pids {
		st, err := stateOf(pid)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		out = append(out, st)
	}
	return out
}

// settledStates is states once no thread of the subject runs: a thread
// that just answered a self-check is on its way back to sleep.
func (s *subjectRun) settledStates(t *testing.T) []processState {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		st := s.states(t)
		running := false
		for _, p := range st {
			for _, th := range p.Threads {
				running = running || strings.HasPrefix(th, "State R")
			}
		}
		if !running || time.Now().After(deadline) {
			return st
		}
	}
}

// expectAsBefore waits until the subject looks from outside as it did
// before (a thread let go takes a moment to be back asleep) and fails the
// test with the difference if it does not come to.
func (s *subjectRun) expectAsBefore(t *testing.T, before []processState, what string) {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if diff = cmp.Diff(before, s.states(t)); diff == "" {
			return
		}
	}
	t.Fatalf("%s: the subject is not as it was (-before +after):\n%s", what, diff)
}

// waitPidsGone waits until no process holds any of pids. The orphans a
// failure leaves to be reaped are this process's (adoptOrphans), which
// reaps them at once, as an init would: this machine's pid 1 takes
// seconds.
func waitPidsGone(t *testing.T, pids []int, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var left []string
		for _, pid := range pids {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
			if !crtest.Gone(pid) {
				left = append(left, crtest.Describe(pid))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still there: %s", what, strings.Join(left, "; "))
		}
	}
}

// adoptOrphans makes this process the reaper of the orphans of its
// descendants, for waitPidsGone, until the test ends.
func adoptOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// selfState is what crsub (this test process) holds that a failed restart
// or checkpoint must not leave more of: fds, mappings of files, children.
type selfState struct {
	Fds      []string
	Mappings []string
	Children []string
}

func ownState(t *testing.T) selfState {
	t.Helper()
	var st selfState
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		link, _ := os.Readlink("/proc/self/fd/" + e.Name())
		st.Fds = append(st.Fds, e.Name()+" "+link)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], "/") {
			st.Mappings = append(st.Mappings, f[0]+" "+f[5])
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + e.Name() + "/children")
		st.Children = append(st.Children, strings.Fields(string(b))...)
	}
	slices.Sort(st.Children)
	return st
}

// filesIn lists a directory's names, for a failure that must leave no file.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// sample picks at most k of 1..n, deterministically: the first three, the
// last two, and evenly spaced ones between.
func sample(n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	set := map[int]bool{1: true, 2: true, 3: true, n - 1: true, n: true}
	for i := 1; len(set) < k; i++ {
		set[1+i*(n-1)/(k-4)] = true
		if i > k {
			break
		}
	}
	out := make([]int, 0, len(set))
	for v := range set {
		if v >= 1 && v <= n {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func TestSample(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want []int
	}{
		{3, 8, []int{1, 2, 3}},
		{8, 8, []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{100, 8, []int{1, 2, 3, 25, 50, 75, 99, 100}},
	} {
		if diff := cmp.Diff(tc.want, sample(tc.n, tc.k)); diff != "" {
			t.Errorf("sample(%d, %d) (-want +got):\n%s", tc.n, tc.k, diff)
		}
	}
}

// TestMatrixWithin reads back the table a matrix writes and accepts a sweep
// that saw some of a row's outcomes, not one the table lacks, nor a row
// more or less.
func TestMatrixWithin(t *testing.T) {
	const (
		fails = "fails; the target runs on as before, no image"
		works = "no effect: the checkpoint works around it"
		lost  = "the target is gone"
	)
	doc := matrix{}
	doc.add("checkpoint", "writing", "image write short, no error", fails)
	doc.add("checkpoint", "writing", "image write short, no error", works)
	doc.add("checkpoint", "freezing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
	order := map[string]int{"checkpoint/freezing": 1, "checkpoint/writing": 2}
	if diff := cmp.Diff(doc, parseTable(doc.table(order))); diff != "" {
		t.Fatalf("the table read back differs (-written +read):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		seen func(matrix)
		want bool
	}{
		{"every outcome", func(m matrix) {
			m.add("checkpoint", "writing", "image write short, no error", fails)
			m.add("checkpoint", "writing", "image write short, no error", works)
			m.add("checkpoint", "freezing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
		}, true},
		{"one of a row's two", func(m matrix) {
			m.add("checkpoint", "writing", "image write short, no error", works)
			m.add("checkpoint", "freezing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
		}, true},
		{"an outcome not listed", func(m matrix) {
			m.add("checkpoint", "writing", "image write short, no error", lost)
			m.add("checkpoint", "freezing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
		}, false},
		{"a row missing", func(m matrix) {
			m.add("checkpoint", "writing", "image write short, no error", fails)
		}, false},
		{"a row more", func(m matrix) {
			m.add("checkpoint", "writing", "image write short, no error", fails)
			m.add("checkpoint", "freezing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
			m.add("checkpoint", "committing", "crsub's own call fails (ENOTRECOVERABLE)", fails)
		}, false},
	} {
		seen := matrix{}
		tc.seen(seen)
		if got := seen.within(parseTable(doc.table(order))); got != tc.want {
			t.Errorf("%s: within = %v, want %v", tc.name, got, tc.want)
		}
	}
}

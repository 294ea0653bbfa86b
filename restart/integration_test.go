package restart_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

func TestMain(m *testing.M) {
	crtest.CloseInherited()
	os.Exit(m.Run())
}

// subject opens what its mode asks for, says ready, and waits. On SIGUSR1
// it writes "alive" to the file "usr1" in its directory.
const subject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
static void on_usr1(int sig) {
	int fd = open("usr1", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	(void)sig;
	write(fd, "alive", 5);
	close(fd);
}
int main(int argc, char **argv) {
	const char *mode = argv[1];
	signal(SIGUSR1, on_usr1);
	if (!strcmp(mode, "xdp")) {
		if (socket(AF_XDP, SOCK_RAW, 0) < 0) return 1; /* not supported by crsub */
	} else if (!strcmp(mode, "mapfile")) {
		int fd = open("data", O_RDWR | O_CREAT, 0600);
		ftruncate(fd, 8192);
		if (mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) return 1;
		close(fd);
	} else if (!strcmp(mode, "openfile")) {
		int fd = open("data", O_RDWR | O_CREAT, 0600);
		write(fd, "0123456789", 10);
		dup2(fd, 5);
		close(fd);
	} else if (!strcmp(mode, "applog")) {
		int fd = open("app.log", O_WRONLY | O_APPEND | O_CREAT, 0600);
		write(fd, "before\n", 7);
		dup2(fd, 5);
		close(fd);
	}
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

func checkpointToMemory(t *testing.T, p *os.Process) *bytes.Buffer {
	t.Helper()
	crtest.WaitBlocked(t, p.Pid)
	var img bytes.Buffer
	if _, err := checkpoint.Checkpoint(context.Background(), p.Pid, &img, checkpoint.DefaultOptions()); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return &img
}

func TestCheckpointFailureLeavesTargetRunning(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "xdp")
	var img bytes.Buffer
	_, err := checkpoint.Checkpoint(context.Background(), p.Pid, &img, checkpoint.DefaultOptions())
	var fdErr *checkpoint.FdError
	var unsupported *checkpoint.UnsupportedError
	if !errors.As(err, &fdErr) || !errors.As(err, &unsupported) || fdErr.Pid != p.Pid || fdErr.Fd != 3 || !strings.HasPrefix(unsupported.What, "socket:[") {
		t.Fatalf("checkpoint with an AF_XDP socket: %v; want fd 3's socket refused as unsupported", err)
	}
	if got := crtest.Status(p.Pid, "TracerPid"); got != "0" {
		t.Errorf("after the failed checkpoint TracerPid is %q, want 0", got)
	}
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(p.Pid, "State"), "S") }, "the target back in its pause")
	// It still runs its own code.
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { b, _ := os.ReadFile(filepath.Join(dir, "usr1")); return string(b) == "alive" }, "the target's SIGUSR1 handler")
}

// A process another tracer holds (a debugger, strace) is refused with the
// tracer named, and stays with it.
func TestCheckpointRefusesTracedProcess(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "plain")
	// The tracer is a child of this test that attaches with PTRACE_SEIZE.
	src := `#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (ptrace(PTRACE_SEIZE, atoi(argv[1]), 0, 0) != 0) return 1;
	write(1, "attached\n", 9);
	for (;;) pause();
}`
	cmd := exec.Command(crtest.Build(t, src), strconv.Itoa(p.Pid))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if _, err := io.ReadFull(out, make([]byte, 9)); err != nil {
		t.Fatalf("the tracer did not attach: %v", err)
	}
	_, err = checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, checkpoint.DefaultOptions())
	var traced *checkpoint.TracedError
	if !errors.As(err, &traced) || traced.Tid != p.Pid || traced.Tracer != cmd.Process.Pid {
		t.Fatalf("checkpoint of a traced process: %v; want thread %d traced by pid %d", err, p.Pid, cmd.Process.Pid)
	}
	if got := crtest.Status(p.Pid, "TracerPid"); got != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("after the refusal TracerPid is %q, want the tracer %d", got, cmd.Process.Pid)
	}
}

func TestRestartRefusesChangedMappedFile(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "mapfile")
	img := checkpointToMemory(t, p)
	if err := os.WriteFile(filepath.Join(dir, "data"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	var rec *restart.RecordError
	if !errors.As(err, &rec) || rec.Type != ckpt.TypeVMA || !strings.Contains(err.Error(), "changed since the checkpoint") {
		t.Fatalf("restart with a changed mapped file: %v; want a VMA record's error saying the file changed", err)
	}
	if !crtest.Gone(p.Pid) {
		t.Errorf("pid %d exists after a failed restart", p.Pid)
	}
}

func TestRestartMissingFileSuggestsSubstitute(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "openfile")
	img := checkpointToMemory(t, p)
	if err := os.Remove(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	_, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), restart.DefaultOptions())
	var rec *restart.RecordError
	var file *restart.FileError
	if !errors.As(err, &rec) || !errors.As(err, &file) || rec.Pid != p.Pid || rec.Fd != 5 || rec.Root != p.Pid || file.Path != filepath.Join(dir, "data") {
		t.Fatalf("restart with fd 5's file gone: %v; want a FileError for fd 5 of pid %d, %s", err, p.Pid, filepath.Join(dir, "data"))
	}
	if !crtest.Gone(p.Pid) {
		t.Errorf("pid %d exists after a failed restart", p.Pid)
	}
	// With a substitute, the same image restarts.
	opts := restart.DefaultOptions()
	opts.Substitutes = map[int]substitute.Source{5: mustParse(t, "null")}
	rp, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if target, _ := os.Readlink("/proc/" + itoa(rp.Pid) + "/fd/5"); target != "/dev/null" {
		t.Errorf("fd 5 is %q, want /dev/null", target)
	}
}

func TestRestartRefusesUnmatchedSubstitute(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "plain")
	img := checkpointToMemory(t, p)
	opts := restart.DefaultOptions()
	opts.Substitutes = map[int]substitute.Source{9: mustParse(t, "null")}
	_, err := restart.Restart(context.Background(), img, opts)
	var sub *restart.SubstituteError
	if !errors.As(err, &sub) || sub.Pid != p.Pid || sub.Fd != 9 || sub.Inherited {
		t.Fatalf("restart with a substitute for a missing fd: %v; want a SubstituteError for fd 9 of pid %d", err, p.Pid)
	}
	if !crtest.Gone(p.Pid) {
		t.Errorf("pid %d exists after a failed restart", p.Pid)
	}
}

// A log that grew between checkpoint and restart goes on appending.
func TestRestartGrownAppendLog(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "applog")
	img := checkpointToMemory(t, p)
	logPath := filepath.Join(dir, "app.log")
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("someone else\n")
	f.Close()
	rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	// Write through the restored fd: it must land at the end.
	w, err := os.OpenFile("/proc/"+itoa(rp.Pid)+"/fd/5", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("after\n")
	w.Close()
	b, _ := os.ReadFile(logPath)
	if string(b) != "before\nsomeone else\nafter\n" {
		t.Errorf("log is %q", b)
	}
}

func TestRestartPidInUse(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	bin := crtest.Build(t, subject)
	p := crtest.Start(t, dir, bin, "plain")
	var img bytes.Buffer
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	if _, err := checkpoint.Checkpoint(context.Background(), p.Pid, &img, opts); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := restart.Restart(context.Background(), &img, restart.DefaultOptions())
	var inUse *restart.PidInUseError
	if !errors.As(err, &inUse) || inUse.Pid != p.Pid {
		t.Fatalf("restart while the original runs: %v; want pid %d in use", err, p.Pid)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("a pid held by a live process took %v to report", time.Since(start))
	}
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(p.Pid, "State"), "S") }, "the original, untouched, in its pause")
}

func mustParse(t *testing.T, spec string) substitute.Source {
	t.Helper()
	s, err := substitute.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

// A hook that fails aborts the restart and leaves no task behind; one that
// succeeds sees the tasks stopped.
func TestHooks(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "plain")
	img := checkpointToMemory(t, p)

	opts := restart.DefaultOptions()
	opts.TasksCreated = func(pids []int) error {
		if len(pids) != 1 || pids[0] != p.Pid {
			t.Errorf("tasks-created hook got pids %v", pids)
		}
		if st := crtest.Status(p.Pid, "State"); !strings.HasPrefix(st, "t") {
			t.Errorf("task in state %q during the hook, want stopped", st)
		}
		return errors.New("veto")
	}
	_, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), opts)
	if err == nil || !strings.Contains(err.Error(), "veto") {
		t.Fatalf("restart with a failing hook: %v", err)
	}
	if !crtest.Gone(p.Pid) {
		t.Errorf("pid %d exists after a vetoed restart", p.Pid)
	}

	var released []int
	opts = restart.DefaultOptions()
	opts.BeforeRelease = func(pids []int) error { released = pids; return nil }
	rp, err := restart.Restart(context.Background(), bytes.NewReader(img.Bytes()), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if len(released) != 1 || released[0] != p.Pid {
		t.Errorf("before-release hook got %v", released)
	}
}

// Two in-memory snapshots of a running process: restarting from the first
// rolls it back to the state it had then.
func TestSnapshotsRollBack(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, subject), "applog")
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	first, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Stats.Frozen <= 0 || first.Size() == 0 {
		t.Fatalf("snapshot stats %+v, size %d", first.Stats, first.Size())
	}
	// The process runs on between snapshots.
	if st := crtest.Status(p.Pid, "State"); st == "" || strings.HasPrefix(st, "T") || strings.HasPrefix(st, "t") || crtest.Status(p.Pid, "TracerPid") != "0" {
		t.Fatalf("after a snapshot the process is in state %q, traced by %s", st, crtest.Status(p.Pid, "TracerPid"))
	}
	second, err := checkpoint.Snapshot(context.Background(), p.Pid, checkpoint.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	// Both images are intact and restartable; WriteTo gives the same bytes
	// as Reader.
	var a, b bytes.Buffer
	if _, err := first.WriteTo(&a); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadFrom(first.Reader()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || int64(a.Len()) != first.Size() {
		t.Fatalf("WriteTo and Reader disagree: %d, %d bytes, Size %d", a.Len(), b.Len(), first.Size())
	}
	for i, img := range []*checkpoint.Image{second, first} {
		rp, err := restart.Restart(context.Background(), img.Reader(), restart.DefaultOptions())
		if err != nil {
			t.Fatalf("restart from snapshot %d: %v", 2-i, err)
		}
		if rp.Pid != p.Pid {
			t.Errorf("restored pid %d, want %d", rp.Pid, p.Pid)
		}
		rp.Signal(syscall.SIGKILL)
		rp.Wait()
	}
}

// A checkpoint streamed straight into a restart: the restart must wait for
// the pid, still held by the frozen original until its whole image is
// written, while taking the stream in (else both wait for each other).
func TestStreamedCheckpointToRestart(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	// 8 MiB of memory: far more than a pipe holds.
	p := crtest.Start(t, dir, crtest.Build(t, `#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
	char *m = malloc(8 << 20);
	memset(m, 7, 8 << 20);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`))
	pr, pw := io.Pipe()
	ckptErr := make(chan error, 1)
	go func() {
		_, err := checkpoint.Checkpoint(context.Background(), p.Pid, pw, checkpoint.DefaultOptions())
		if err == nil {
			p.Wait() // only now: a wait during the checkpoint takes its ptrace stops
		}
		pw.CloseWithError(err)
		ckptErr <- err
	}()
	rp, err := restart.Restart(context.Background(), pr, restart.DefaultOptions())
	if cerr := <-ckptErr; cerr != nil {
		t.Fatalf("checkpoint: %v", cerr)
	}
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if rp.Pid != p.Pid {
		t.Errorf("restored pid %d, want %d", rp.Pid, p.Pid)
	}
	crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(rp.Pid, "State"), "S") }, "the restored process in pause")
}

// Restored into a new pid namespace, the root is pid 1 there, its child
// keeps its pid, and the child still sees the root as its parent.
func TestPidNamespace(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static void report(int sig) {
	char b[64];
	int n = snprintf(b, sizeof b, "%d %d\n", getpid(), getppid());
	int fd = open(getpid() == 1 || getppid() != 1 ? "root" : "child", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	(void)sig;
	write(fd, b, n);
	close(fd);
}
int main(void) {
	signal(SIGUSR1, report);
	pid_t c = fork();
	if (c == 0) {
		for (;;) pause();
	}
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`))
	img := checkpointToMemory(t, p)
	opts := restart.DefaultOptions()
	opts.PidNamespace = true
	rp, err := restart.Restart(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if len(rp.Pids) != 2 {
		t.Fatalf("restored pids %v", rp.Pids)
	}
	for _, pid := range rp.Pids {
		syscall.Kill(pid, syscall.SIGUSR1)
	}
	read := func(name string) string {
		var s string
		crtest.WaitFor(t, func() bool { b, _ := os.ReadFile(filepath.Join(dir, name)); s = string(b); return s != "" }, name+" report")
		return strings.TrimSpace(s)
	}
	if got := read("root"); !strings.HasPrefix(got, "1 ") {
		t.Errorf("root reports pid/ppid %q, want pid 1", got)
	}
	if got := read("child"); got == "" || !strings.HasSuffix(got, " 1") {
		t.Errorf("child reports pid/ppid %q, want its parent to be 1", got)
	}
	if ns := crtest.Status(rp.Pid, "NSpid"); !strings.HasSuffix(ns, "\t1") && !strings.HasSuffix(ns, " 1") {
		t.Errorf("root's NSpid %q, want 1 innermost", ns)
	}
}

// A substitute for an fd of a child process, named by its pid.
func TestChildSubstitute(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
	int ready[2];
	pipe(ready);
	pid_t c = fork();
	if (c == 0) {
		int fd = open("child.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd != 5) {
			dup2(fd, 5);
			close(fd);
		}
		write(ready[1], "x", 1);
		for (;;) pause();
	}
	char b;
	read(ready[0], &b, 1);
	close(ready[0]);
	close(ready[1]);
	FILE *f = fopen("child.pid", "w");
	fprintf(f, "%d", c);
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`))
	child := childPid(t, dir)
	img := checkpointToMemory(t, p)
	os.Remove(filepath.Join(dir, "child.log")) // gone: only a substitute can restart it
	awaitReaped(child)
	opts := restart.DefaultOptions()
	opts.ProcessSubstitutes = map[int]map[int]substitute.Source{child: {5: mustParse(t, "file:"+filepath.Join(dir, "new.log")+",create")}}
	rp, err := restart.Restart(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(child, syscall.SIGKILL); rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if target, _ := os.Readlink("/proc/" + itoa(child) + "/fd/5"); target != filepath.Join(dir, "new.log") {
		t.Errorf("child's fd 5 is %q, want the substitute", target)
	}
}

// childPid reads the pid a subject wrote to child.pid in dir.
func childPid(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("child.pid: %v", err)
	}
	return child
}

// awaitReaped waits for a killed child, which pid 1 reaps (slowly on some
// machines), to be gone, so restart can have its pid.
func awaitReaped(pid int) {
	for deadline := time.Now().Add(30 * time.Second); !crtest.Gone(pid) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
}

// An incremental image stores only what changed since its parent; restart
// takes the rest from the parent, and refuses a missing parent.
func TestIncrementalImage(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, `#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define PAGES 1024
static unsigned char *m;
static void note(const char *name, const char *what) {
	int fd = open(name, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	write(fd, what, strlen(what));
	close(fd);
}
static void mutate(int sig) {
	(void)sig;
	memset(m + 10 * 4096, 0xaa, 4096);           /* changed */
	memset(m + 20 * 4096, 0, 4096);              /* zeroed */
	madvise(m + 30 * 4096, 4096, MADV_DONTNEED); /* dropped */
	note("mutated", "yes");
}
static void verify(int sig) {
	(void)sig;
	for (int i = 0; i < PAGES; i++) {
		unsigned char want = i == 10 ? 0xaa : (i == 20 || i == 30) ? 0 : (unsigned char)(i % 251 + 1);
		for (int j = 0; j < 4096; j++)
			if (m[i * 4096 + j] != want) {
				note("result", "bad");
				return;
			}
	}
	note("result", "ok");
}
int main(void) {
	m = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < PAGES; i++)
		memset(m + i * 4096, i % 251 + 1, 4096);
	signal(SIGUSR1, mutate);
	signal(SIGUSR2, verify);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`))
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	base, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
	if err != nil {
		t.Fatal(err)
	}
	basePath := filepath.Join(dir, "base.img")
	f, err := os.Create(basePath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.Signal(syscall.SIGUSR1)
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "mutated")); return err == nil }, "the mutation")

	opts = checkpoint.DefaultOptions()
	opts.Parent = basePath
	var incr bytes.Buffer
	if _, err := checkpoint.Checkpoint(context.Background(), p.Pid, &incr, opts); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	if int64(incr.Len()) > base.Size()/4 {
		t.Errorf("incremental image is %d bytes, its parent %d: not much smaller", incr.Len(), base.Size())
	}

	ropts := restart.DefaultOptions()
	ropts.ImageDir = dir
	rp, err := restart.Restart(context.Background(), bytes.NewReader(incr.Bytes()), ropts)
	if err != nil {
		t.Fatal(err)
	}
	rp.Signal(syscall.SIGUSR2)
	var result string
	crtest.WaitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "result"))
		result = string(b)
		return result != ""
	}, "the verdict")
	rp.Signal(syscall.SIGKILL)
	rp.Wait()
	if result != "ok" {
		t.Errorf("restored memory: %s", result)
	}

	if err := os.Rename(basePath, basePath+".moved"); err != nil {
		t.Fatal(err)
	}
	_, err = restart.Restart(context.Background(), bytes.NewReader(incr.Bytes()), ropts)
	if err == nil || !strings.Contains(err.Error(), "incremental to") {
		t.Errorf("restart without its parent: %v", err)
	}
	if !crtest.Gone(p.Pid) {
		t.Errorf("pid %d exists after a refused restart", p.Pid)
	}
}

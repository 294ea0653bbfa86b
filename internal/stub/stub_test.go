package stub

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/ptrace/ptracetest"
	"github.com/crsub/crsub/internal/remote"
)

// spawnAtFreePid spawns a stub at a pid not in use, retrying when another
// process takes it first, and kills and reaps it at the end of the test.
func spawnAtFreePid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		want := pidMax/2 + rand.IntN(pidMax/2)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", want)); err == nil {
			continue
		}
		pid, err := Spawn(want)
		if errors.Is(err, ErrPidInUse) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if pid != want {
			t.Fatalf("Spawn(%d) = %d", want, pid)
		}
		t.Cleanup(func() { killAndReap(t, pid) })
		return pid
	}
	t.Fatal("no free pid found")
	return 0
}

func killAndReap(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Errorf("kill stub %d: %v", pid, err)
		return
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Errorf("reap stub %d: %v", pid, err)
			return
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
	}
	if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("stub %d ended with status %#x, want killed by SIGKILL", pid, uint32(ws))
	}
}

// statusFields returns the named fields of /proc/PID/status.
func statusFields(t *testing.T, pid int, names ...string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, _ := strings.Cut(line, ":")
		for _, n := range names {
			if name == n {
				got[name] = strings.TrimSpace(value)
			}
		}
	}
	return got
}

func TestSpawnAtPid(t *testing.T) {
	ptracetest.LockThread(t)
	pid := spawnAtFreePid(t)
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_PAUSE)
	want := map[string]string{
		"Threads": "1",
		"PPid":    strconv.Itoa(os.Getpid()),
		// Everything but SIGKILL and SIGSTOP, which the kernel never
		// blocks.
		"SigBlk": fmt.Sprintf("%016x", ^uint64(0)&^(1<<(unix.SIGKILL-1)|1<<(unix.SIGSTOP-1))),
	}
	got := statusFields(t, pid, "Threads", "PPid", "SigBlk")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/proc/%d/status (-want +got):\n%s", pid, diff)
	}

	tr, err := ptrace.Seize(pid, ptrace.ExitKill)
	if err != nil {
		t.Fatal(err)
	}
	r, err := remote.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.MapPage(0); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		nr   int
		want uint64
	}{
		{"getpid", unix.SYS_GETPID, uint64(pid)},
		{"gettid", unix.SYS_GETTID, uint64(pid)},
		{"getppid", unix.SYS_GETPPID, uint64(os.Getpid())},
	}
	for _, c := range calls {
		got, err := r.Syscall(c.nr)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s() in the stub = %d, want %d", c.name, got, c.want)
		}
	}
	// Handing the stub back its own registers resumes its pause loop; a
	// restart hands it the image's instead.
	if err := r.Finish(r.Regs()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_PAUSE)
}

func TestSpawnAnyPid(t *testing.T) {
	ptracetest.LockThread(t)
	pid, err := Spawn(0)
	if err != nil {
		t.Fatal(err)
	}
	defer killAndReap(t, pid)
	if pid <= 0 {
		t.Fatalf("Spawn(0) = %d", pid)
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_PAUSE)
}

func TestSpawnPidInUse(t *testing.T) {
	ptracetest.LockThread(t)
	_, err := Spawn(os.Getpid())
	if !errors.Is(err, ErrPidInUse) || !errors.Is(err, unix.EEXIST) {
		t.Errorf("Spawn(own pid) error = %v, want ErrPidInUse wrapping EEXIST", err)
	}
}

// The caller's thread must get its signal mask back.
func TestSpawnRestoresCallerMask(t *testing.T) {
	ptracetest.LockThread(t)
	before := threadSigBlk(t)
	pid, err := Spawn(0)
	if err != nil {
		t.Fatal(err)
	}
	defer killAndReap(t, pid)
	if after := threadSigBlk(t); after != before {
		t.Errorf("caller thread SigBlk = %s after Spawn, was %s", after, before)
	}
}

func threadSigBlk(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no SigBlk in status")
	return ""
}

// A stub spawned from a thread that joined a pid namespace below crsub's
// for its children has the pid asked for there, and crsub for parent.
func TestSpawnBelow(t *testing.T) {
	ptracetest.LockThread(t)
	init, err := SpawnInit()
	if err != nil {
		t.Fatal(err)
	}
	defer killAndReap(t, init)
	ptracetest.WaitBlockedIn(t, init, unix.SYS_PAUSE)
	pidns, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		t.Fatal(err)
	}
	defer pidns.Close()
	own, err := os.Open("/proc/thread-self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if err := unix.Setns(int(pidns.Fd()), unix.CLONE_NEWPID); err != nil {
		t.Fatal(err)
	}
	pid, spawnErr := SpawnBelow(7)
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWPID); err != nil {
		t.Fatal(err)
	}
	if spawnErr != nil {
		t.Fatal(spawnErr)
	}
	defer killAndReap(t, pid)
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_PAUSE)
	want := map[string]string{"PPid": strconv.Itoa(os.Getpid()), "NSpid": fmt.Sprintf("%d\t7", pid)}
	if diff := cmp.Diff(want, statusFields(t, pid, "PPid", "NSpid")); diff != "" {
		t.Errorf("/proc/%d/status (-want +got):\n%s", pid, diff)
	}
}

// A sibling is a child of the spawner's parent: the test runs the spawner
// (this binary again) and must find the stub its own child, to reap.
func TestSpawnSibling(t *testing.T) {
	// The pid and errors come through files: the stub holds on to the
	// spawner's stdout and stderr, a pipe that would never see its end.
	dir := t.TempDir()
	pidFile := dir + "/pid"
	stderr, err := os.Create(dir + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), siblingSpawner+"="+pidFile)
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(stderr.Name())
		t.Fatalf("spawner: %v: %s", err, msg)
	}
	out, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(out))
	if err != nil {
		t.Fatalf("spawner printed %q", out)
	}
	t.Cleanup(func() { killAndReap(t, pid) })
	if got := statusFields(t, pid, "PPid")["PPid"]; got != strconv.Itoa(os.Getpid()) {
		t.Errorf("sibling stub %d has parent %s, want the spawner's parent %d", pid, got, os.Getpid())
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_PAUSE)
}

// siblingSpawner, in the environment, makes the test binary spawn a
// sibling stub, write its pid to the file it names and exit
// (TestSpawnSibling).
const siblingSpawner = "CRSUB_STUB_SIBLING_SPAWNER"

func TestMain(m *testing.M) {
	if pidFile := os.Getenv(siblingSpawner); pidFile != "" {
		runtime.LockOSThread()
		pid, err := SpawnSibling(0)
		if err == nil {
			err = os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o600)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		os.Stdout.WriteString("skipping: stub tests need root\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

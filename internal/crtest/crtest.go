// Package crtest runs real subject processes for the engines' integration
// tests: it compiles a C program, starts it with nothing but the files it
// is given, waits until it says it is ready, and cleans up after it.
package crtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips a test that needs ptrace and clone3 set_tid.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// subjectHeader is crtest.h, which subjects may include: helpers every
// subject would otherwise write again.
const subjectHeader = `#include <signal.h>
/* Waits until *flag is set by the handler of sig, without the race of
   while (!*flag) pause(): sig is blocked but inside sigsuspend, so it
   cannot arrive between the test of the flag and the wait. */
static void crtest_await(volatile sig_atomic_t *flag, int sig) {
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, sig);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!*flag) sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}
`

// Build compiles C source into an executable in a temporary directory. The
// source may include "crtest.h" (subjectHeader).
func Build(t testing.TB, source string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "subject.c")
	if err := os.WriteFile(filepath.Join(dir, "crtest.h"), []byte(subjectHeader), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "subject")
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	// A subject that does not compile is the test's failure, not a skip.
	if out, err := exec.Command("cc", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	return bin
}

// Start runs bin with args in dir, stdio on /dev/null, in its own session,
// and waits until the file "ready" appears in dir. The process is killed
// and reaped when the test ends, if it still exists.
func Start(t testing.TB, dir, bin string, args ...string) *os.Process {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	p, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{Dir: dir, Files: []*os.File{null, null, null}, Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		_, _ = p.Wait()
	})
	WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "ready")); return err == nil }, "subject ready")
	return p
}

// WaitFor polls cond for up to a minute: a benchmark subject touching
// gibibytes takes many seconds on a machine slow at first-touch faults.
func WaitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// WaitBlocked waits until pid no longer runs: asleep in a system call or
// stopped. A subject is checkpointed there, not on its way from writing
// "ready" to its pause: caught between checking its flag and calling
// pause(), it would sleep through a signal sent as soon as it is restored
// (a race in the subject that the checkpoint only widens).
func WaitBlocked(t testing.TB, pid int) {
	t.Helper()
	WaitFor(t, func() bool {
		state := Status(pid, "State")
		return state != "" && !strings.HasPrefix(state, "R")
	}, "pid "+itoa(pid)+" blocked")
}

// Status returns a field of /proc/PID/status ("State", "TracerPid"…), or
// "" if the process is gone.
func Status(pid int, field string) string {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WaitForReport waits up to timeout for pid to write something into the
// file path and returns it; giving up, it says where pid is (Describe).
func WaitForReport(t testing.TB, pid int, path string, timeout time.Duration) []byte {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(path); len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", filepath.Base(path), Describe(pid))
		}
	}
}

// Describe says where a process is, for a test that gave up waiting on
// it: its state, the kernel function it sleeps in, the system call it is
// in (number and arguments), its pending and blocked signals, and its
// working directory.
func Describe(pid int) string {
	if Gone(pid) {
		return "pid " + itoa(pid) + " is gone"
	}
	read := func(name string) string {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/" + name)
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	cwd, _ := os.Readlink("/proc/" + itoa(pid) + "/cwd")
	return "pid " + itoa(pid) + " in " + cwd + ": state " + Status(pid, "State") + ", wchan " + read("wchan") +
		", syscall " + read("syscall") + ", pending " + Status(pid, "ShdPnd") + "/" + Status(pid, "SigPnd") +
		", blocked " + Status(pid, "SigBlk") + ", caught " + Status(pid, "SigCgt") + ", tracer " + Status(pid, "TracerPid")
}

// Gone reports whether no process has pid.
func Gone(pid int) bool { return unix.Kill(pid, 0) == unix.ESRCH }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// CloseInherited marks every fd above stdio close-on-exec, so subjects do
// not inherit what the test binary inherited (they would be external
// files in their images). Call it from TestMain.
func CloseInherited() {
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}

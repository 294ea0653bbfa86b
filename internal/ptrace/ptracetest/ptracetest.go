// Package ptracetest helps tests of the tracing packages run real processes:
// it starts and cleans up tracee processes, builds small C programs, and
// waits for a process to reach a scheduler state or a system call by polling
// /proc with a deadline instead of sleeping.
package ptracetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeout bounds every wait for a process to reach a state.
const Timeout = 10 * time.Second

// LockThread pins the test goroutine to its OS thread for the rest of the
// test, as ptrace requires. The thread is never unlocked: the runtime then
// ends it with the test, and the kernel detaches whatever it still traces
// instead of leaving tracees stopped for good.
func LockThread(t testing.TB) {
	t.Helper()
	runtime.LockOSThread()
}

// Start starts a command and kills it at the end of the test. Use Cmd.Wait
// only when the test has not reaped the process through ptrace.
func Start(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// State returns the state letter of /proc/PID/stat (R, S, T, t, Z, ...).
func State(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name may hold spaces and parentheses; the state follows
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		return "", fmt.Errorf("malformed /proc/%d/stat: %q", pid, b)
	}
	return string(b[i+2 : i+3]), nil
}

// CurrentSyscall returns the first field of /proc/PID/syscall: the number of
// the system call the process is blocked in, or -1 when it is in user mode
// ("running" also maps to -1).
func CurrentSyscall(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return 0, err
	}
	field, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, err := strconv.Atoi(field)
	if err != nil {
		return -1, nil
	}
	return n, nil
}

// WaitState polls until the process is in one of the given states.
func WaitState(t testing.TB, pid int, states ...string) {
	t.Helper()
	var last string
	err := poll(func() (bool, error) {
		s, err := State(pid)
		last = s
		if err != nil {
			return false, err
		}
		for _, want := range states {
			if s == want {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("process %d: want state %v, last %q: %v", pid, states, last, err)
	}
}

// WaitBlockedIn polls until the process is sleeping (state S) inside one of
// the given system calls.
func WaitBlockedIn(t testing.TB, pid int, nrs ...int) {
	t.Helper()
	var lastState string
	lastNr := -1
	err := poll(func() (bool, error) {
		s, err := State(pid)
		if err != nil {
			return false, err
		}
		nr, err := CurrentSyscall(pid)
		if err != nil {
			return false, err
		}
		lastState, lastNr = s, nr
		if s != "S" {
			return false, nil
		}
		for _, want := range nrs {
			if nr == want {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("process %d: want blocked in syscall %v, last state %q syscall %d: %v", pid, nrs, lastState, lastNr, err)
	}
}

var errTimeout = errors.New("timed out")

func poll(done func() (bool, error)) error {
	deadline := time.Now().Add(Timeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(delay)
	}
}

// BuildC compiles a C program with cc into the test's temporary directory
// and returns the executable's path; it skips the test if cc is missing.
func BuildC(t testing.TB, src string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) to build the helper program")
	}
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "prog.c")
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(srcPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O1", "-Wall", "-o", exe, srcPath).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	return exe
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logger is the subject: it logs "pid P tick N" every 20 ms, N kept in
// memory only, alternating between fd 3 (a log it opened itself), fd 1 and
// fd 2 (which the test points at the same log): three fds to rotate. It
// first closes every fd above 2: exec.Cmd passes on whatever fds without
// FD_CLOEXEC the test binary inherited (a pipe of whoever ran go test),
// and crsub could not restart a process holding half of an outside pipe.
const loggerC = `
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	unsigned long tick;
	char line[64];
	int fd;

	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc != 2 || (fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644)) != 3)
		return 2;
	for (tick = 0;; tick++) {
		int len = snprintf(line, sizeof(line), "pid %d tick %lu\n", getpid(), tick);
		if (write(1 + tick % 3, line, len) != len)
			return 3;
		nanosleep(&pause, NULL);
	}
}
`

type logLine struct{ pid, tick int }

func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if _, err := fmt.Sscanf(l, "pid %d tick %d", &ll.pid, &ll.tick); err != nil {
			t.Fatalf("%s: bad line %q", path, l)
		}
		out = append(out, ll)
	}
	return out
}

// waitLines waits until path holds at least n lines.
func waitLines(t *testing.T, path string, n int) []logLine {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		lines := readLog(t, path)
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %d lines after 5 s, want %d", path, len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCounting fails unless lines all come from pid, in steps of one,
// starting at first.
func checkCounting(t *testing.T, what string, lines []logLine, pid, first int) {
	t.Helper()
	for i, l := range lines {
		if l.pid != pid || l.tick != first+i {
			t.Fatalf("%s line %d: pid %d tick %d, want pid %d tick %d", what, i+1, l.pid, l.tick, pid, first+i)
		}
	}
}

func TestRotate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, set_tid)")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no cc to build the subject")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "logger.c"), []byte(loggerC), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "logger")
	if out, err := exec.Command(cc, "-O1", "-o", bin, filepath.Join(dir, "logger.c")).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}

	logPath := filepath.Join(dir, "app.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Only fds 0-2 (and the one it opens) reach the subject: exec.Cmd
	// passes nothing else.
	cmd := exec.Command(bin, logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logFile.Close()
	pid := cmd.Process.Pid
	// No cmd.Wait while the checkpoint runs: a wait for a child in the
	// tracer's own process would take the ptrace stops the checkpoint
	// waits for. Rotate reaps the subject once the checkpoint killed it.
	rotated := false
	t.Cleanup(func() {
		if !rotated {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	waitLines(t, logPath, 10)
	rot, err := Rotate(context.Background(), pid, logPath, nil)
	rotated = true
	if err != nil {
		t.Fatal(err)
	}
	p := rot.Process
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		p.Wait()
	})
	if p.Pid != pid {
		t.Fatalf("restored as pid %d, want %d", p.Pid, pid)
	}
	if want := []int{1, 2, 3}; !slices.Equal(rot.Fds, want) {
		t.Fatalf("rotated fds %v, want %v", rot.Fds, want)
	}
	for _, fd := range rot.Fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
		if err != nil || link != logPath {
			t.Fatalf("fd %d -> %q (%v), want %s", fd, link, err, logPath)
		}
	}

	// The old log got what was written before the checkpoint, and nothing
	// more; the new one goes on from the next tick, same pid.
	old := readLog(t, rot.Rotated)
	checkCounting(t, "rotated log", old, pid, 0)
	fresh := waitLines(t, logPath, 20)
	checkCounting(t, "new log", fresh, pid, len(old))
	if again := readLog(t, rot.Rotated); len(again) != len(old) {
		t.Fatalf("the rotated log grew after the rotation: %d -> %d lines", len(old), len(again))
	}
	t.Logf("pid %d: ticks 0..%d in %s, %d..%d in the new log", pid, len(old)-1,
		filepath.Base(rot.Rotated), fresh[0].tick, fresh[len(fresh)-1].tick)
}

package restart_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
)

// consoleSession is a container's shell in miniature: a session whose
// controlling terminal, on fds 0-2, is a pty slave whose master the test
// holds. It answers each line: "stat" with its terminal's interrupt
// character, window, whether the terminal is its session's, and its name;
// anything else with "got:LINE".
const consoleSession = `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
int main(void) {
	char line[256];
	printf("up\n");
	fflush(stdout);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		if (!fgets(line, sizeof line, stdin)) return 1;
		line[strcspn(line, "\n")] = 0;
		if (strcmp(line, "stat")) {
			printf("got:%s\n", line);
		} else {
			struct termios t;
			struct winsize w;
			tcgetattr(0, &t);
			ioctl(0, TIOCGWINSZ, &w);
			printf("stat:intr=%d rows=%d cols=%d ctty=%d name=%s\n", t.c_cc[VINTR], w.ws_row, w.ws_col,
			       tcgetsid(0) == getsid(0), ttyname(0));
		}
		fflush(stdout);
	}
}
`

// newPty opens a pty's master, unlocked, and returns it with its slave's
// path.
func newPty(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// expect reads from a master until want shows, for 10 s at most, and
// returns the line it is on.
func expect(t *testing.T, m *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(string(got), want); {
		left := time.Until(deadline)
		fds := []unix.PollFd{{Fd: int32(m.Fd()), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, int(left.Milliseconds())); err != nil && err != unix.EINTR || n == 0 || left <= 0 {
			t.Fatalf("no %q from the terminal, got %q", want, got)
		}
		n, err := unix.Read(int(m.Fd()), buf)
		if err != nil && err != unix.EINTR {
			t.Fatalf("reading the master, waiting for %q after %q: %v", want, got, err)
		}
		got = append(got, buf[:max(n, 0)]...)
	}
	s := string(got)
	line := s[strings.Index(s, want):]
	if end := strings.IndexAny(line, "\r\n"); end >= 0 {
		line = line[:end]
	}
	return line
}

// A session on a terminal whose master was outside the tree (a
// container's console) comes back, with Options.NewTerminal, on a new
// pty numbered as the old one, whose master the caller gets: the session
// answers on it, with its terminal's settings and as its controlling
// terminal. A NewTerminal that fails fails the restart, leaving nothing.
func TestNewTerminal(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	bin := crtest.Build(t, consoleSession)
	master, slavePath := newPty(t)
	defer master.Close()
	// The interrupt character ^G, a 33x77 window.
	tio, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Cc[unix.VINTR] = 7
	if err := unix.IoctlSetTermios(int(master.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(bin, []string{bin}, &os.ProcAttr{Dir: dir, Files: []*os.File{slave, slave, slave},
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}})
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	expect(t, master, "up")
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "ready")); return err == nil }, "subject ready")
	pid := p.Pid
	img := checkpointToMemory(t, p).Bytes()
	// The console's holder goes: its pty number is free again.
	master.Close()

	opts := restart.DefaultOptions()
	var given []*os.File
	defer func() {
		for _, f := range given {
			f.Close()
		}
	}()
	opts.NewTerminal = func(m *os.File) error {
		fd, err := unix.Dup(int(m.Fd()))
		if err != nil {
			return err
		}
		given = append(given, os.NewFile(uintptr(fd), "new master"))
		return errors.New("the console socket is gone")
	}
	if rp, err := restart.Restart(context.Background(), strings.NewReader(string(img)), opts); err == nil {
		killRestored(rp)
		t.Fatal("restart succeeded with NewTerminal failing")
	} else if !strings.Contains(err.Error(), "the console socket is gone") {
		t.Errorf("restart error %q does not say why", err)
	}
	if !crtest.Gone(pid) {
		t.Fatalf("a failed restart left pid %d", pid)
	}

	opts.NewTerminal = func(m *os.File) error {
		fd, err := unix.Dup(int(m.Fd()))
		if err != nil {
			return err
		}
		given = append(given, os.NewFile(uintptr(fd), "new master"))
		return nil
	}
	// The failed restart's pty goes with its master.
	for _, f := range given {
		f.Close()
	}
	given = nil
	rp, err := restart.Restart(context.Background(), strings.NewReader(string(img)), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRestored(rp) })
	if len(given) != 1 {
		t.Fatalf("NewTerminal was given %d masters, want 1 (fds 0-2 share one)", len(given))
	}
	m := given[0]
	if _, err := m.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, m, "got:"); got != "got:hello" {
		t.Errorf("the session answered %q", got)
	}
	if _, err := m.Write([]byte("stat\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := expect(t, m, "stat:"), "stat:intr=7 rows=33 cols=77 ctty=1 name="+slavePath; got != want {
		t.Errorf("the session's terminal: %q, want %q", got, want)
	}
}

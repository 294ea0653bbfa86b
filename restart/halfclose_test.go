package restart_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
)

// halfServer accepts one connection on a loopback port (written to the
// file "port"). With "peer-fin" it reads nothing until SIGUSR1, then reads
// to the end of the stream and answers "<what it read>|eof", and closes.
// With "local-fin" it sends "bye" and shuts its side down at once; on
// SIGUSR1 it reads what the peer sent since and writes, to the file "got",
// what it read and what a write now does.
const halfServer = `#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
int main(int argc, char **argv) {
	int peer_fin = !strcmp(argv[1], "peer-fin"), v6 = argc > 2 && !strcmp(argv[2], "ipv6"), port;
	int l = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (v6) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		socklen_t len = sizeof a;
		if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return 1;
		port = ntohs(a.sin6_port);
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof a;
		if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return 1;
		port = ntohs(a.sin_port);
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	FILE *f = fopen("port", "w");
	fprintf(f, "%d", port);
	fclose(f);
	int c = accept(l, NULL, NULL);
	if (c < 0) return 2;
	if (!peer_fin) {
		write(c, "bye", 3);
		shutdown(c, SHUT_WR);
	}
	close(open("accepted", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	char buf[256];
	size_t n = 0;
	ssize_t r;
	if (peer_fin) {
		while ((r = read(c, buf + n, sizeof buf - 8 - n)) > 0) n += r;
		if (r < 0) return 3;
		memcpy(buf + n, "|eof", 4);
		write(c, buf, n + 4);
		close(c);
	} else {
		r = read(c, buf, sizeof buf - 1);
		if (r < 0) r = 0;
		buf[r] = 0;
		errno = 0;
		ssize_t w = write(c, "x", 1);
		f = fopen("got", "w");
		fprintf(f, "%s|%s", buf, w < 0 ? strerror(errno) : "written");
		fclose(f);
	}
	for (;;) pause();
}
`

func startHalf(t *testing.T, mode, family string) (*os.Process, string, *net.TCPConn) {
	t.Helper()
	dir := t.TempDir()
	bin := crtest.Build(t, halfServer)
	// ready is created right away: the server is ready when it waits in
	// accept, the port file written.
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := crtest.Start(t, dir, bin, mode, family)
	crtest.WaitFor(t, func() bool { b, _ := os.ReadFile(filepath.Join(dir, "port")); return len(b) > 0 }, "the port")
	port, _ := os.ReadFile(filepath.Join(dir, "port"))
	host := "127.0.0.1"
	if family == "ipv6" {
		host = "[::1]"
	}
	c, err := net.Dial("tcp", host+":"+string(port))
	if err != nil {
		t.Fatal(err)
	}
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "accepted")); return err == nil }, "the accept")
	return p, dir, c.(*net.TCPConn)
}

// askReport sends SIGUSR1 to a restored subject and returns what it writes
// to the file name in dir: the subject's verdict on its own state.
func askReport(t *testing.T, rp *restart.Process, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	os.Remove(path)
	rp.Signal(syscall.SIGUSR1)
	return string(crtest.WaitForReport(t, rp.Pid, path, time.Minute))
}

func checkpointAndRestart(t *testing.T, p *os.Process) *restart.Process {
	t.Helper()
	return restartFrom(t, checkpointToMemory(t, p))
}

// restartFrom restarts the image img with default options; the restored
// tree is killed and reaped when the test ends.
func restartFrom(t *testing.T, img io.Reader) *restart.Process {
	t.Helper()
	rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRestored(rp) })
	return rp
}

// killRestored kills every process of a restored tree, not only its root:
// children the root leaves behind are reparented, not killed.
func killRestored(rp *restart.Process) {
	for _, pid := range rp.Pids[1:] {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	rp.Signal(syscall.SIGKILL)
	rp.Wait()
}

// checkVerdict has the restored writer check its memory: every page as
// its generation says, some of them rewritten.
func checkVerdict(t *testing.T, rp *restart.Process, dir string, st checkpoint.Stats) {
	t.Helper()
	v := verdict(t, rp.Pid, dir)
	if !strings.HasPrefix(v, "ok") || strings.HasSuffix(v, " 0 rewritten") {
		t.Fatalf("restored process: %s", v)
	}
	t.Logf("restored process: %s; stats %+v", v, st)
}

// The client sent data and its FIN before the checkpoint; the server had
// read none of it. After restart it reads the data, then the end of the
// stream, and can still answer on its own half.
func TestHalfClosedByPeer(t *testing.T) {
	crtest.RequireRoot(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) { testHalfClosedByPeer(t, family) })
	}
}

func testHalfClosedByPeer(t *testing.T, family string) {
	p, _, c := startHalf(t, "peer-fin", family)
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the FIN arrives: CLOSE_WAIT
	rp := checkpointAndRestart(t, p)
	rp.Signal(syscall.SIGUSR1)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello|eof" {
		t.Fatalf("the restored server answered %q (%v), want \"hello|eof\"", got, err)
	}
}

// The server sent "bye" and shut its side down before the checkpoint.
// After restart it still receives, and writing is refused.
func TestHalfClosedLocally(t *testing.T) {
	crtest.RequireRoot(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) { testHalfClosedLocally(t, family) })
	}
}

func testHalfClosedLocally(t *testing.T, family string) {
	p, dir, c := startHalf(t, "local-fin", family)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("before the checkpoint the server sent %q (%v)", got, err)
	}
	rp := checkpointAndRestart(t, p)
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	rp.Signal(syscall.SIGUSR1)
	path := filepath.Join(dir, "got")
	crtest.WaitFor(t, func() bool { b, _ := os.ReadFile(path); return len(b) > 0 }, "the server's report")
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "late|") || strings.HasSuffix(string(b), "|written") {
		t.Fatalf("the restored server reports %q: want \"late\" read and the write refused", b)
	}
}

package restart_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
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

// lazyServer listens on a loopback port (written to the file "port") and,
// every 300 ms, accepts what waits and echoes what its connections sent;
// with "never" it never accepts.
const lazyServer = `#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int never = argc > 1 && !strcmp(argv[1], "never"), conns[64], n = 0;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 7) || getsockname(l, (struct sockaddr *)&a, &len)) return 1;
	FILE *f = fopen("port", "w");
	fprintf(f, "%d", ntohs(a.sin_port));
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		struct timespec ts = { 0, 300000000 };
		nanosleep(&ts, NULL);
		if (never) continue;
		int c;
		while (n < 64 && (c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) conns[n++] = c;
		for (int i = 0; i < n; i++) {
			char buf[256];
			ssize_t r = read(conns[i], buf, sizeof buf);
			if (r > 0) write(conns[i], buf, r);
		}
	}
}
`

func dialLazy(t *testing.T, dir string) net.Conn {
	t.Helper()
	port, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strings.TrimSpace(string(port)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A connection still in the accept queue when the checkpoint starts: the
// server is let run until it accepts it, and the accepted connection is
// restored and answers.
func TestAcceptQueueDrained(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, lazyServer))
	conn := dialLazy(t, dir)
	defer conn.Close()
	var img, log bytes.Buffer
	opts := checkpoint.DefaultOptions()
	opts.Log = slog.New(slog.NewTextHandler(&log, nil))
	if _, err := checkpoint.Checkpoint(context.Background(), p.Pid, &img, opts); err != nil {
		p.Kill()
		p.Wait()
		t.Fatal(err)
	}
	p.Wait()
	if !strings.Contains(log.String(), "accept waiting connections") {
		t.Errorf("the connection was not waiting at the checkpoint; log:\n%s", log.String())
	}
	rp, err := restart.Restart(context.Background(), &img, restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo through the connection accepted during the checkpoint: %q, %v", got, err)
	}
}

// A server that never accepts: the checkpoint fails naming the listener,
// and the server runs on untouched.
func TestAcceptQueueNeverDrained(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, lazyServer), "never")
	defer func() { p.Kill(); p.Wait() }()
	conn := dialLazy(t, dir)
	defer conn.Close()
	_, err := checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, checkpoint.DefaultOptions())
	var queued *checkpoint.AcceptQueueError
	if !errors.As(err, &queued) {
		t.Fatalf("checkpoint error %v, want an AcceptQueueError", err)
	}
	if queued.Fd != 3 || queued.Waiting != 1 || !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Errorf("error %q: want fd 3 with 1 connection waiting, and the address", err)
	}
	// Let go, it may run a moment before it sleeps again.
	crtest.WaitFor(t, func() bool {
		return strings.HasPrefix(crtest.Status(p.Pid, "State"), "S") && crtest.Status(p.Pid, "TracerPid") == "0"
	}, "the server asleep and untraced after the failed checkpoint")
}

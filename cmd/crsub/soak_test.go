//go:build soak

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
)

// echoServer accepts one TCP connection on loopback and echoes what it
// reads, through a buffer in its memory: bytes in flight are in the socket
// queues, in the buffer, or half written when a checkpoint comes.
const echoServer = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof a;
	if (bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &n)) return 1;
	FILE *f = fopen("port", "w");
	fprintf(f, "%d", ntohs(a.sin_port));
	fclose(f);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	int c = accept(l, NULL, NULL);
	static char buf[65536];
	for (;;) {
		ssize_t r = read(c, buf, sizeof buf);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return r == 0 ? 0 : 2;
		for (ssize_t o = 0; o < r;) {
			ssize_t w = write(c, buf + o, r - o);
			if (w < 0 && errno == EINTR) continue;
			if (w < 0) return 3;
			o += w;
		}
	}
}
`

// patternByte is the byte at offset i of the stream the client sends: a
// byte lost, repeated or reordered anywhere shows at once.
func patternByte(i int64) byte { return byte(i*131 + i>>9 + i>>17) }

// echoClient sends the pattern as fast as the server takes it and checks
// every byte it gets back.
type echoClient struct {
	conn          net.Conn
	sent, checked atomic.Int64
	failed        chan error
}

func startEchoClient(t *testing.T, port string) *echoClient {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c := &echoClient{conn: conn, failed: make(chan error, 2)}
	go func() {
		buf := make([]byte, 32<<10)
		for off := int64(0); ; off += int64(len(buf)) {
			for i := range buf {
				buf[i] = patternByte(off + int64(i))
			}
			if _, err := conn.Write(buf); err != nil {
				c.failed <- fmt.Errorf("writing at byte %d: %w", off, err)
				return
			}
			c.sent.Store(off + int64(len(buf)))
		}
	}()
	go func() {
		r := bufio.NewReaderSize(conn, 64<<10)
		buf := make([]byte, 32<<10)
		var off int64
		for {
			n, err := r.Read(buf)
			for i := range n {
				if buf[i] != patternByte(off) {
					c.failed <- fmt.Errorf("byte %d is %#x, want %#x", off, buf[i], patternByte(off))
					return
				}
				off++
			}
			c.checked.Store(off)
			if err != nil {
				c.failed <- fmt.Errorf("reading at byte %d: %w", off, err)
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// flowing waits until at least min more bytes came back checked.
func (c *echoClient) flowing(t *testing.T, min int64, what string) {
	t.Helper()
	from := c.checked.Load()
	deadline := time.Now().Add(30 * time.Second)
	for c.checked.Load()-from < min {
		select {
		case err := <-c.failed:
			t.Fatalf("%s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d bytes came back in 30 s, want %d", what, c.checked.Load()-from, min)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSoak checkpoints and restarts an echo server under load CYCLES times
// (CRSUB_SOAK_CYCLES, default 10), the client checking every byte: first
// plain checkpoint and restart cycles, then the same with a --leave-running
// snapshot taken before each. It runs the crsub binary named by CRSUB
// (make soak builds it) and reports the figures (make soak; not part of
// make test).
func TestSoak(t *testing.T) {
	crtest.RequireRoot(t)
	crsubBin := os.Getenv("CRSUB")
	if crsubBin == "" {
		t.Skip("CRSUB names the crsub binary to soak (make soak)")
	}
	cycles := 10
	if s := os.Getenv("CRSUB_SOAK_CYCLES"); s != "" {
		var err error
		if cycles, err = strconv.Atoi(s); err != nil || cycles <= 0 {
			t.Fatalf("CRSUB_SOAK_CYCLES=%q", s)
		}
	}
	// The restored server's parent, crsub restart --detach, exits at once:
	// the server is then this process's to reap, not pid 1's, which is
	// slow at it here, and the next restart waits for its pid.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	bin := crtest.Build(t, echoServer)
	for _, snapshots := range []bool{false, true} {
		name := "checkpoint-restart"
		if snapshots {
			name = "snapshot-checkpoint-restart"
		}
		t.Run(name, func(t *testing.T) { soak(t, crsubBin, bin, cycles, snapshots) })
	}
}

func soak(t *testing.T, crsubBin, bin string, cycles int, snapshots bool) {
	dir := t.TempDir()
	p := crtest.Start(t, dir, bin)
	pid := p.Pid
	t.Cleanup(func() { _ = unix.Kill(pid, unix.SIGKILL); reapPid(pid) })
	port, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		t.Fatal(err)
	}
	c := startEchoClient(t, string(port))
	c.flowing(t, 1<<20, "before the first checkpoint")
	crsub := func(args ...string) (time.Duration, error) {
		start := time.Now()
		out, err := exec.Command(crsubBin, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("crsub %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return time.Since(start), nil
	}
	img, snap := filepath.Join(dir, "img"), filepath.Join(dir, "snap")
	var ckptTimes, restartTimes, snapTimes []time.Duration
	start := time.Now()
	for i := range cycles {
		if snapshots {
			d, err := crsub("checkpoint", "--pid", strconv.Itoa(pid), "-o", snap, "--leave-running", "-q")
			if err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			snapTimes = append(snapTimes, d)
			c.flowing(t, 64<<10, fmt.Sprintf("cycle %d, after the snapshot", i))
		}
		d, err := crsub("checkpoint", "--pid", strconv.Itoa(pid), "-o", img, "-q")
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		ckptTimes = append(ckptTimes, d)
		reapPid(pid)
		if d, err = crsub("restart", "-i", img, "--detach", "-q"); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		restartTimes = append(restartTimes, d)
		c.flowing(t, 64<<10, fmt.Sprintf("cycle %d, after the restart", i))
		select {
		case err := <-c.failed:
			t.Fatalf("cycle %d: %v", i, err)
		default:
		}
	}
	total := time.Since(start)
	st, _ := os.Stat(img)
	t.Logf("%d cycles in %v (%v a cycle): %d bytes sent, %d echoed and checked, none lost, repeated or reordered; image %d bytes",
		cycles, total.Round(time.Millisecond), (total / time.Duration(cycles)).Round(time.Microsecond), c.sent.Load(), c.checked.Load(), st.Size())
	t.Logf("checkpoint: %s", spread(ckptTimes))
	t.Logf("restart:    %s", spread(restartTimes))
	if snapshots {
		t.Logf("snapshot (--leave-running): %s", spread(snapTimes))
	}
}

// spread says the median, 99th percentile and maximum of ds.
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Microsecond) }
	return fmt.Sprintf("median %v, p99 %v, max %v", at(0.5), at(0.99), s[len(s)-1].Round(time.Microsecond))
}

// reapPid reaps pid if it is this process's child (or orphan), once it
// has ended.
func reapPid(pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

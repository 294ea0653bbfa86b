package restart_test

import (
	"testing"

	"github.com/crsub/crsub/internal/crtest"
)

// unixLoose holds unix sockets that have no peer and no name: fd 5 a
// stream socket never connected, fd 6 a datagram one, fd 9 the end of a
// pair whose other end was closed. On SIGUSR1 it writes to "report" what
// each is now.
const unixLoose = `#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
static int type(int fd) { int t = -1; socklen_t l = sizeof t; getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l); return t; }
int main(void) {
	int sv[2];
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	dup2(socket(AF_UNIX, SOCK_STREAM, 0), 5);
	dup2(socket(AF_UNIX, SOCK_DGRAM, 0), 6);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	dup2(sv[0], 9);
	close(sv[0]);
	close(sv[1]);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	char c;
	ssize_t r = read(9, &c, 1);
	ssize_t w = write(9, "x", 1);
	int werr = errno;
	FILE *f = fopen("report", "w");
	fprintf(f, "%d %d read=%zd write=%zd/%s", type(5), type(6), r, w, w < 0 ? strerror(werr) : "ok");
	fclose(f);
	for (;;) pause();
}
`

func TestUnixSocketsWithoutPeerOrName(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, unixLoose))
	rp := checkpointAndRestart(t, p)
	if want, got := "1 2 read=0 write=-1/Broken pipe", askReport(t, rp, dir, "report"); got != want {
		t.Errorf("restored sockets: %q, want %q", got, want)
	}
}

package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
)

// A process whose main thread called pthread_exit while another thread
// runs on looks like a zombie in /proc. Recorded as one, its threads would
// be lost (and killed with the tree): the checkpoint is refused, naming
// it, whether it is the root or a child, and the tree runs on.
func TestLeaderGone(t *testing.T) {
	crtest.RequireRoot(t)
	bin := crtest.Build(t, `#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
static void *wait_forever(void *arg) { for (;;) pause(); return arg; }
static void leaderless(void) {
	pthread_t t;
	pthread_create(&t, NULL, wait_forever, NULL);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	pthread_exit(NULL);
}
int main(int argc, char **argv) {
	if (argc > 1 && !strcmp(argv[1], "root"))
		leaderless();
	if (fork() == 0)
		leaderless();
	for (;;) pause();
}`)
	for _, tc := range []struct {
		name string
		arg  string
	}{{"child", "child"}, {"root", "root"}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin, tc.arg)
			t.Cleanup(func() { _ = unix.Kill(-p.Pid, unix.SIGKILL) })
			leaderless := p.Pid
			if tc.arg == "child" {
				crtest.WaitFor(t, func() bool {
					kids, err := procfs.Children(p.Pid, p.Pid)
					if err != nil || len(kids) != 1 {
						return false
					}
					leaderless = kids[0]
					return crtest.Status(leaderless, "State") != "" && strings.HasPrefix(crtest.Status(leaderless, "State"), "Z")
				}, "the child's main thread gone")
			} else {
				crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(p.Pid, "State"), "Z") }, "the main thread gone")
			}
			_, err := checkpoint.Checkpoint(context.Background(), p.Pid, io.Discard, checkpoint.DefaultOptions())
			var lg *checkpoint.LeaderGoneError
			if !errors.As(err, &lg) || lg.Pid != leaderless || lg.Threads != 1 {
				t.Fatalf("checkpoint: %v, want a LeaderGoneError for pid %d with 1 thread", err, leaderless)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(leaderless)) {
				t.Errorf("the error does not name pid %d: %v", leaderless, err)
			}
			if tids, err := procfs.Tids(leaderless); err != nil || len(tids) != 2 {
				t.Errorf("pid %d after the refused checkpoint: threads %v (%v), want its leader and the thread running on", leaderless, tids, err)
			}
		})
	}
}

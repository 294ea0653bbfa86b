package restart_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/restart"
)

// userContainer clones an init into new user, pid and UTS namespaces,
// writes its maps from outside (a range), lets it go and writes its pid to
// "init", then "ready". The init goes to / (its launcher's directory is
// no one's to search there), becomes root of its namespace and sleeps.
const userContainer = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void put(const char *p, const char *s) {
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) _exit(1);
	close(fd);
}
int main(void) {
	int go[2];
	char p[64], c;
	if (pipe(go)) return 1;
	pid_t init = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | SIGCHLD, NULL, NULL, NULL, 0);
	if (init < 0) return 1;
	if (init == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1 || close(go[0]) || chdir("/") || setresgid(0, 0, 0) || setresuid(0, 0, 0) || sethostname("uns", 3)) _exit(1);
		for (;;) pause();
	}
	snprintf(p, sizeof(p), "/proc/%d/uid_map", init);
	put(p, "0 100000 65536\n");
	snprintf(p, sizeof(p), "/proc/%d/gid_map", init);
	put(p, "0 100000 65536\n");
	if (write(go[1], "g", 1) != 1) return 1;
	snprintf(p, sizeof(p), "%d", init);
	put("init", p);
	put("ready", "");
	waitpid(init, NULL, 0);
	return 0;
}`

// checkpointUserContainer checkpoints the init from the host; it returns
// the image and the init's uid_map as the host saw it.
func checkpointUserContainer(t *testing.T) (*bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	launcher := crtest.Start(t, dir, crtest.Build(t, userContainer))
	b, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil {
		t.Fatal(err)
	}
	init, _ := strconv.Atoi(string(b))
	crtest.WaitFor(t, func() bool { return crtest.Status(init, "Uid") == "100000\t100000\t100000\t100000" }, "the init root of its namespace")
	crtest.WaitBlocked(t, init)
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", init))
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if _, err := checkpoint.Checkpoint(context.Background(), init, &img, checkpoint.DefaultOptions()); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := launcher.Wait(); err != nil {
		t.Fatal(err)
	}
	return &img, string(uidMap)
}

// A container in a user namespace of its own comes back in a new one with
// the same maps, owning its pid and UTS namespaces, its init root there.
func TestUserNamespaceContainer(t *testing.T) {
	crtest.RequireRoot(t)
	img, uidMap := checkpointUserContainer(t)
	rp, err := restart.Restart(context.Background(), img, restart.DefaultOptions())
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	pid := rp.Pid
	got, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil || string(got) != uidMap {
		t.Errorf("restored uid_map %q, %v; want %q", got, err, uidMap)
	}
	if ids := crtest.Status(pid, "Uid"); ids != "100000\t100000\t100000\t100000" {
		t.Errorf("restored uids %q, want root of its namespace (100000 outside)", ids)
	}
	user := nsInode(t, pid, "user")
	if own := nsInode(t, os.Getpid(), "user"); user == own {
		t.Fatalf("restored in crsub's user namespace")
	}
	for _, name := range []string{"pid", "uts"} {
		owner, err := ns.Owner(pid, name)
		if err != nil || owner != user {
			t.Errorf("restored %s namespace owned by %d (%v), want its user namespace %d", name, owner, err, user)
		}
	}
}

// A restart of it that fails leaves no process and no user namespace.
func TestUserNamespaceFailedRestart(t *testing.T) {
	crtest.RequireRoot(t)
	img, _ := checkpointUserContainer(t)
	failedRestartLeavesNone(t, img, "user")
}

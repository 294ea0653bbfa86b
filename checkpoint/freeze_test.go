package checkpoint_test

import (
	"os"
	"strings"
	"testing"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
)

func TestMain(m *testing.M) {
	crtest.CloseInherited()
	os.Exit(m.Run())
}

// A parent and its child are both stopped by Freeze and both run again
// after Thaw.
func TestFreezeThaw(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	bin := crtest.Build(t, `#include <fcntl.h>
#include <unistd.h>
int main(void) {
	if (fork() == 0) for (;;) pause();
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`)
	p := crtest.Start(t, dir, bin)
	f, err := checkpoint.Freeze(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Pids) != 2 || f.Pids[0] != p.Pid {
		t.Fatalf("frozen pids %v, want %d and its child", f.Pids, p.Pid)
	}
	for _, pid := range f.Pids {
		if st := crtest.Status(pid, "State"); !strings.HasPrefix(st, "t") {
			t.Errorf("pid %d is in state %q while frozen, want t (traced)", pid, st)
		}
	}
	if err := f.Thaw(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range f.Pids {
		if tracer := crtest.Status(pid, "TracerPid"); tracer != "0" {
			t.Errorf("pid %d after Thaw: traced by %s", pid, tracer)
		}
		// Just let go, it may run a moment before its pause again.
		crtest.WaitFor(t, func() bool { return strings.HasPrefix(crtest.Status(pid, "State"), "S") }, "the thawed process back in pause")
	}
	if err := f.Thaw(); err == nil {
		t.Error("a second Thaw succeeded")
	}
	child := f.Pids[1]
	t.Cleanup(func() { _ = killPid(child) })
}

func killPid(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

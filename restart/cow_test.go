package restart_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/restart"
)

// A process that keeps writing its memory is snapshotted copy-on-write:
// its memory is read from a copy forked while it was frozen, after it runs
// again and rewrites pages. The restored process must hold the memory of
// the freeze, consistent page by page with its generation array (it checks
// itself); the original must be left without the copy, its child.
func TestCopyOnWriteWhileWriting(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, writer), "64")
	time.Sleep(100 * time.Millisecond) // some pages rewritten already
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	opts.CopyOnWrite = true
	img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
	if err != nil {
		p.Kill()
		p.Wait()
		t.Fatal(err)
	}
	st := img.Stats
	if st.PagesCopyOnWrite < 16384 || st.BytesRead >= 8<<20 {
		t.Errorf("%d pages read from the copy, %d bytes read while frozen: the copy did not spare the frozen phase", st.PagesCopyOnWrite, st.BytesRead)
	}
	tids, err := procfs.Tids(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if kids, err := procfs.Children(p.Pid, tid); err != nil || len(kids) != 0 {
			t.Fatalf("after the checkpoint the original has children %v (%v): the copy was not reaped", kids, err)
		}
	}
	if got := crtest.Status(p.Pid, "TracerPid"); got != "0" {
		t.Fatalf("the original is still traced by %s", got)
	}
	if v := verdict(t, p.Pid, dir); !strings.HasPrefix(v, "ok") {
		t.Fatalf("the original after the checkpoint: %s", v)
	}
	p.Kill()
	p.Wait()
	rp, err := restart.Restart(context.Background(), img.Reader(), restart.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rp.Signal(syscall.SIGKILL); rp.Wait() }()
	v := verdict(t, rp.Pid, dir)
	if !strings.HasPrefix(v, "ok") || strings.HasSuffix(v, " 0 rewritten") {
		t.Fatalf("restored process: %s", v)
	}
	t.Logf("restored process: %s; stats %+v", v, st)
}

// Copy-on-write is refused where it cannot work, naming why, and the
// process is untouched.
func TestCopyOnWriteRefused(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, writer), "4")
	opts := checkpoint.DefaultOptions()
	opts.CopyOnWrite = true
	if _, err := checkpoint.Snapshot(context.Background(), p.Pid, opts); err == nil || !strings.Contains(err.Error(), "leaves the process running") {
		t.Fatalf("copy-on-write without LeaveRunning: %v", err)
	}
	opts.LeaveRunning = true
	var sink strings.Builder
	if _, err := checkpoint.Checkpoint(context.Background(), p.Pid, &sink, opts); err == nil || !strings.Contains(err.Error(), "in-memory image") {
		t.Fatalf("copy-on-write into a stream: %v", err)
	}
	if v := verdict(t, p.Pid, dir); !strings.HasPrefix(v, "ok") {
		t.Fatalf("the process after the refusals: %s", v)
	}
}

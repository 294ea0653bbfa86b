package restart_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/restart"
)

// A process that keeps writing its memory is checkpointed copy-on-write,
// into memory (Snapshot) and into a file (CheckpointFile): its memory is
// read from a copy forked while it was frozen, after it runs again and
// rewrites pages. The restored process must hold the memory of the
// freeze, consistent page by page with its generation array (it checks
// itself); the original must be left without the copy, its child.
func TestCopyOnWriteWhileWriting(t *testing.T) {
	crtest.RequireRoot(t)
	for _, into := range []string{"memory", "file"} {
		t.Run(into, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, crtest.Build(t, writer), "64")
			time.Sleep(100 * time.Millisecond) // some pages rewritten already
			opts := checkpoint.DefaultOptions()
			opts.LeaveRunning = true
			opts.CopyOnWrite = true
			var image io.Reader
			var st checkpoint.Stats
			switch into {
			case "memory":
				img, err := checkpoint.Snapshot(context.Background(), p.Pid, opts)
				if err != nil {
					p.Kill()
					p.Wait()
					t.Fatal(err)
				}
				image, st = img.Reader(), img.Stats
			case "file":
				f, err := os.Create(filepath.Join(t.TempDir(), "img"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				committed := false
				opts.Commit = func() error { committed = true; return nil }
				got, err := checkpoint.CheckpointFile(context.Background(), p.Pid, f, opts)
				if err != nil {
					p.Kill()
					p.Wait()
					t.Fatal(err)
				}
				if !committed {
					t.Error("CheckpointFile did not commit the image")
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				image, st = f, *got
			}
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
			checkVerdict(t, restartFrom(t, image), dir, st)
		})
	}
}

// The copy of a process in a pid namespace of its own is found by the pid
// crsub sees (clone, run inside the process, returns the one it has in the
// namespace), held and reaped: it spares the frozen phase, and the
// original is left without it, running on.
func TestCopyOnWriteInPidNamespace(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	u := crtest.Start(t, dir, "/usr/bin/unshare", "--pid", "--fork", crtest.Build(t, writer), "64")
	kids, err := procfs.Children(u.Pid, u.Pid)
	if err != nil || len(kids) != 1 {
		t.Fatalf("unshare's children: %v (%v)", kids, err)
	}
	pid := kids[0]
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // unshare's end leaves it
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	opts.CopyOnWrite = true
	img, err := checkpoint.Snapshot(context.Background(), pid, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if st := img.Stats; st.PagesCopyOnWrite < 16384 || st.BytesRead >= 8<<20 {
		t.Errorf("%d pages read from the copy, %d bytes read while frozen: no copy was made", st.PagesCopyOnWrite, st.BytesRead)
	}
	if kids, err := procfs.Children(pid, pid); err != nil || len(kids) != 0 {
		t.Errorf("after the checkpoint the original has children %v (%v): the copy was not reaped", kids, err)
	}
	if got := crtest.Status(pid, "TracerPid"); got != "0" {
		t.Errorf("the original is still traced by %s", got)
	}
	if v := verdict(t, pid, dir); !strings.HasPrefix(v, "ok") {
		t.Errorf("the original after the checkpoint: %s", v)
	}
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

// busyTree has three threads and its main thread all looping on usleep,
// the same code in libc, and a child that sleeps. On SIGUSR1 it reports
// how many of the three threads still loop and whether the child is
// alive.
const busyTree = `#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t ask;
static volatile unsigned long loops[4];
static pid_t child;
static void on_usr1(int s) { (void)s; ask = 1; }
static void *spin(void *arg) { long i = (long)arg; for (;;) { usleep(50); loops[i]++; } return NULL; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	child = fork();
	if (child == 0) { for (;;) pause(); }
	pthread_t t;
	for (long i = 1; i < 4; i++) pthread_create(&t, NULL, spin, (void *)i);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		usleep(50);
		loops[0]++;
		if (ask) {
			ask = 0;
			unsigned long seen[4];
			for (int i = 0; i < 4; i++) seen[i] = loops[i];
			usleep(100000);
			int moving = 0;
			for (int i = 1; i < 4; i++) moving += loops[i] > seen[i];
			int st, gone = waitpid(child, &st, WNOHANG) != 0;
			FILE *f = fopen("report.tmp", "w");
			fprintf(f, "moving=%d child=%s", moving, gone ? "gone" : "alive");
			fclose(f);
			rename("report.tmp", "report");
		}
	}
}
`

// A copy-on-write snapshot of a multi-threaded process with a child: its
// threads keep running through the snapshots (the copy is reaped in the
// process from code nobody runs, not by borrowing the code a running
// thread is in: that once killed a Python process with SIGILL), no copy is
// left behind, and the restored tree runs, all threads and the child.
func TestCopyOnWriteThreadsAndChild(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, busyTree))
	opts := checkpoint.DefaultOptions()
	opts.LeaveRunning = true
	opts.CopyOnWrite = true
	var img *checkpoint.Image
	for i := 0; i < 5; i++ {
		var err error
		if img, err = checkpoint.Snapshot(context.Background(), p.Pid, opts); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if img.Stats.PagesCopyOnWrite == 0 {
			t.Fatalf("snapshot %d read no page from a copy", i)
		}
	}
	tids, err := procfs.Tids(p.Pid)
	if err != nil || len(tids) != 4 {
		t.Fatalf("after the snapshots the process has threads %v (%v), want 4", tids, err)
	}
	var kids []int
	for _, tid := range tids {
		k, _ := procfs.Children(p.Pid, tid)
		kids = append(kids, k...)
	}
	if len(kids) != 1 {
		t.Fatalf("after the snapshots the process has children %v, want only its own", kids)
	}
	if got := askReport(t, &restart.Process{Pid: p.Pid}, dir, "report"); got != "moving=3 child=alive" {
		t.Fatalf("the original after the snapshots: %s", got)
	}
	syscall.Kill(kids[0], syscall.SIGKILL)
	p.Kill()
	p.Wait()
	if got := askReport(t, restartFrom(t, img.Reader()), dir, "report"); got != "moving=3 child=alive" {
		t.Fatalf("the restored process: %s", got)
	}
}

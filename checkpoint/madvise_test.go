package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// madviser maps a 16-page region; on SIGUSR1 it writes to every page, on
// SIGUSR2 it marks the whole region MADV_DONTDUMP (its flags change, its
// bounds do not), on SIGHUP a thread it creates then does the same, on
// SIGALRM a thread it creates does nothing; then it creates the file
// "done". A first thread, created and joined at the start, leaves its stack
// in glibc's cache for the later ones: creating them maps nothing.
const madviser = `#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on(int s) { got = s; }
static unsigned char *p;
static void *advise(void *arg) { (void)arg; madvise(p, 16 * 4096, MADV_DONTDUMP); return 0; }
static void *nothing(void *arg) { return arg; }
int main(void) {
	p = mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	signal(SIGUSR1, on); signal(SIGUSR2, on); signal(SIGHUP, on); signal(SIGALRM, on);
	pthread_t t;
	pthread_create(&t, 0, nothing, 0);
	pthread_join(t, 0);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		while (!got) pause();
		if (got == SIGUSR1) for (int i = 0; i < 16 * 4096; i += 4096) p[i]++;
		if (got == SIGUSR2) advise(0);
		if (got == SIGHUP || got == SIGALRM) { pthread_create(&t, 0, got == SIGHUP ? advise : nothing, 0); pthread_join(t, 0); }
		got = 0;
		close(open("done", O_CREAT | O_WRONLY, 0600));
	}
}`

// smaps read before the freeze holds as long as the process has not taken
// its mmap lock for writing: writing to pages keeps it, a madvise that
// changes a mapping's flags without moving its bounds does not, nor one
// made by a thread created after the read (creating one does not count);
// and it never stands for a
// later process with the same pid.
func TestEarlyMadvise(t *testing.T) {
	crtest.RequireRoot(t)
	if _, err := sys.TracepointID(mmapLockTracepoint); err != nil {
		t.Skipf("no mmap_lock tracepoint: %v", err)
	}
	bin := crtest.Build(t, madviser)
	for _, tc := range []struct {
		name       string
		signal     syscall.Signal // 0: none
		otherStart bool
		want       bool
	}{
		{name: "nothing done", want: true},
		{name: "pages written", signal: syscall.SIGUSR1, want: true},
		{name: "madvise", signal: syscall.SIGUSR2, want: false},
		{name: "a new thread", signal: syscall.SIGALRM, want: true},
		{name: "madvise by a new thread", signal: syscall.SIGHUP, want: false},
		{name: "another process", otherStart: true, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin)
			defer func() { p.Kill(); p.Wait() }()
			tp := holdTracepoint()
			defer tp.Close()
			early := readMadviseEarly([]int{p.Pid}, tp)
			defer early.Close()
			if early.procs[p.Pid] == nil {
				t.Fatal("smaps not read before the freeze")
			}
			if tc.signal != 0 {
				p.Signal(tc.signal)
				done := filepath.Join(dir, "done")
				crtest.WaitFor(t, func() bool { _, err := os.Stat(done); return err == nil }, done)
				crtest.WaitBlocked(t, p.Pid)
			}
			stat, err := procfs.ReadStat(p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			start := stat.StartTime
			if tc.otherStart {
				start++
			}
			adv, ok := early.take(p.Pid, start)
			if ok != tc.want {
				t.Fatalf("take: %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			now := readMadvise(p.Pid)
			if now.err != nil {
				t.Fatal(now.err)
			}
			if diff := cmp.Diff(now.flags, adv.flags); diff != "" {
				t.Errorf("flags read before differ from smaps now (-now +before):\n%s", diff)
			}
		})
	}
}

// The mmap flags smaps shows go into a VMA's flags, the advice stays its
// madvise state.
func TestVmaFlags(t *testing.T) {
	const priv = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	type out struct {
		Flags     int
		Madv      []string
		FileWrite bool
	}
	for _, tc := range []struct {
		name  string
		flags int
		names []string
		want  out
	}{
		{"none", priv, nil, out{priv, nil, false}},
		{"advice only", priv, []string{ckpt.MadvDontFork, ckpt.MadvSequential}, out{priv, []string{ckpt.MadvDontFork, ckpt.MadvSequential}, false}},
		{"noreserve", priv, []string{mapNoReserve, ckpt.MadvRandom}, out{priv | unix.MAP_NORESERVE, []string{ckpt.MadvRandom}, false}},
		{"droppable is its own type", priv, []string{ckpt.MadvWipeOnFork, mapNoReserve, mapDroppable}, out{unix.MAP_DROPPABLE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE, []string{ckpt.MadvWipeOnFork}, false}},
		{"a shared file open for writing", unix.MAP_SHARED, []string{mapMayWrite}, out{unix.MAP_SHARED, nil, true}},
		{"shared anonymous memory says nothing of a file", unix.MAP_SHARED | unix.MAP_ANONYMOUS, []string{mapMayWrite}, out{unix.MAP_SHARED | unix.MAP_ANONYMOUS, nil, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &ckpt.VMA{Flags: tc.flags, MadvFlags: []string{"stale"}}
			vmaFlags(v, tc.names)
			if diff := cmp.Diff(tc.want, out{v.Flags, v.MadvFlags, v.FileWrite}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadMadviseAnonymous sums smaps' Anonymous to what smaps_rollup says
// of the same process (residentEstimate), which the room in an image file
// is sized by when smaps was not read before the freeze.
func TestReadMadviseAnonymous(t *testing.T) {
	keep := bytes.Repeat([]byte{1}, 16<<20)
	adv := readMadvise(os.Getpid())
	rollup := residentEstimate(os.Getpid())
	if adv.err != nil {
		t.Fatal(adv.err)
	}
	if adv.anonymous < int64(len(keep)) {
		t.Fatalf("smaps says %d bytes of private memory, less than the %d touched", adv.anonymous, len(keep))
	}
	if d := adv.anonymous - rollup; d > 4<<20 || d < -4<<20 {
		t.Errorf("smaps says %d bytes of private memory, smaps_rollup %d", adv.anonymous, rollup)
	}
	runtime.KeepAlive(keep)
}

package checkpoint

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/internal/procfs"
)

func TestRestartsUnseen(t *testing.T) {
	for _, tc := range []struct {
		name string
		call procfs.Blocked
		want bool
	}{
		{"pause", procfs.Blocked{Nr: unix.SYS_PAUSE}, true},
		{"rt_sigsuspend", procfs.Blocked{Nr: unix.SYS_RT_SIGSUSPEND}, true},
		{"wait4", procfs.Blocked{Nr: unix.SYS_WAIT4}, true},
		{"futex wait, private, no timeout", procfs.Blocked{Nr: unix.SYS_FUTEX, Args: [6]uint64{0x1000, futexWait | futexPrivateFlag}}, true},
		{"futex wait bitset, realtime clock, no timeout", procfs.Blocked{Nr: unix.SYS_FUTEX, Args: [6]uint64{0x1000, futexWaitBitset | futexClockRealtime}}, true},
		{"futex wait with a timeout", procfs.Blocked{Nr: unix.SYS_FUTEX, Args: [6]uint64{0x1000, futexWait, 0, 0x7ffd0000}}, false},
		{"futex lock_pi", procfs.Blocked{Nr: unix.SYS_FUTEX, Args: [6]uint64{0x1000, 6}}, false},
		{"clock_nanosleep", procfs.Blocked{Nr: unix.SYS_CLOCK_NANOSLEEP}, false},
		{"epoll_wait", procfs.Blocked{Nr: unix.SYS_EPOLL_WAIT}, false},
		{"read", procfs.Blocked{Nr: unix.SYS_READ}, false},
	} {
		if got := restartsUnseen(tc.call); got != tc.want {
			t.Errorf("%s: restartsUnseen %v, want %v", tc.name, got, tc.want)
		}
	}
}

// wake takes a process asleep in pause(2) through a stop and back, which
// it does not notice, and returns once it is in pause again; one in nanosleep(2) (clock_nanosleep in glibc) it
// leaves alone.
func TestWake(t *testing.T) {
	crtest.RequireRoot(t)
	bin := crtest.Build(t, `#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	if (strcmp(argv[1], "pause") == 0) pause();
	else { struct timespec ts = {3600, 0}; nanosleep(&ts, 0); }
	close(open("left", O_CREAT | O_WRONLY, 0600));
	return 0;
}`)
	switches := func(pid int) int {
		n, err := strconv.Atoi(crtest.Status(pid, "voluntary_ctxt_switches"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		call  string
		woken bool
	}{{"pause", true}, {"nanosleep", false}} {
		t.Run(tc.call, func(t *testing.T) {
			dir := t.TempDir()
			p := crtest.Start(t, dir, bin, tc.call)
			defer func() { p.Kill(); p.Wait() }()
			crtest.WaitBlocked(t, p.Pid)
			before := switches(p.Pid)
			// wake returns with the process back in its call.
			wake([]int{p.Pid})
			if woken := switches(p.Pid) > before; woken != tc.woken {
				t.Errorf("woken: %v, want %v", woken, tc.woken)
			}
			if b, ok, err := procfs.ReadSyscall(p.Pid); err != nil || !ok || b.Nr != map[string]int64{"pause": unix.SYS_PAUSE, "nanosleep": unix.SYS_CLOCK_NANOSLEEP}[tc.call] {
				t.Errorf("after wake the subject is in %+v (in a call: %v, err %v), want %s", b, ok, err, tc.call)
			}
			if _, err := os.Stat(filepath.Join(dir, "left")); err == nil {
				t.Error("the subject left its call")
			}
		})
	}
}

package checkpoint

import (
	"os/exec"
	"testing"
	"time"

	"github.com/crsub/crsub/internal/procfs"
)

// A child that could not be frozen is looked at again: a zombie is
// recorded as one, a vanished one skipped, a live one left to fail.
func TestEndedChild(t *testing.T) {
	// The shell's child exits and is never reaped: exec leaves it a zombie.
	sh := exec.Command("sh", "-c", "sleep 0 & exec sleep 60")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sh.Process.Kill(); sh.Wait() }()
	var zombiePid int
	for deadline := time.Now().Add(10 * time.Second); zombiePid == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		kids, _ := procfs.Children(sh.Process.Pid, sh.Process.Pid)
		for _, k := range kids {
			if st, err := procfs.ReadStat(k); err == nil && st.State == 'Z' {
				zombiePid = k
			}
		}
	}
	if zombiePid == 0 {
		t.Fatal("no zombie child appeared")
	}
	z, gone := endedChild(&proc{pid: zombiePid, ppid: sh.Process.Pid})
	if gone || z == nil || !z.Zombie || z.Pid != zombiePid || z.Ppid != sh.Process.Pid {
		t.Errorf("zombie %d: got %+v, gone %v; want a zombie record with its parent", zombiePid, z, gone)
	}

	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	if z, gone := endedChild(&proc{pid: done.Process.Pid, ppid: 1}); !gone || z != nil {
		t.Errorf("reaped pid %d: got %+v, gone %v; want gone", done.Process.Pid, z, gone)
	}

	if z, gone := endedChild(&proc{pid: sh.Process.Pid, ppid: 1}); gone || z != nil {
		t.Errorf("live sleeping pid %d: got %+v, gone %v; want neither", sh.Process.Pid, z, gone)
	}
}

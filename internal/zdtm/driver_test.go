package zdtm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDriver runs two simple zdtm static tests through crsub. It needs
// CRIU's built test/zdtm/static directory in ZDTM_STATIC (the suite is not
// vendored) and root; otherwise it is skipped. CRSUB names the crsub
// binary; without it the test builds one.
func TestDriver(t *testing.T) {
	static := os.Getenv("ZDTM_STATIC")
	if static == "" {
		t.Skip("ZDTM_STATIC is not set: no zdtm static tests to run")
	}
	if os.Geteuid() != 0 {
		t.Skip("checkpoint/restart needs root")
	}
	bin := os.Getenv("CRSUB")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "crsub")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/crsub/crsub/cmd/crsub").CombinedOutput()
		if err != nil {
			t.Fatalf("go build crsub: %v\n%s", err, out)
		}
	}
	r := &Runner{
		Engine:  &Crsub{Bin: bin},
		Mode:    Mode{Iters: 1},
		Machine: Machine{Arch: HostArch()},
		Work:    t.TempDir(),
		Timeout: 30 * time.Second,
		Logf:    t.Logf,
	}
	for _, name := range []string{"env00", "pipe00"} {
		res := r.Run(context.Background(), static, name)
		t.Logf("%s %s %.2fs %s %s", res.Status, res.Test, res.Seconds, res.Step, res.Reason)
		if res.Status != Pass {
			t.Errorf("%s: %s at %s: %s", name, res.Status, res.Step, res.Reason)
		}
	}
}

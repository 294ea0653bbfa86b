package procfs

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadLimitsMatchesPrlimit(t *testing.T) {
	lims, err := ReadLimits(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(lims) != 16 {
		t.Fatalf("%d limits, want 16", len(lims))
	}
	for _, l := range lims {
		var want unix.Rlimit
		if err := unix.Prlimit(0, l.Resource, nil, &want); err != nil {
			t.Fatal(err)
		}
		if l.Cur != want.Cur || l.Max != want.Max {
			t.Errorf("resource %d: %d/%d, prlimit says %d/%d", l.Resource, l.Cur, l.Max, want.Cur, want.Max)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseLimits(b) })
}

package checkpoint

import (
	"os"
	"strconv"
	"testing"
)

func TestDeadProcDir(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		link, at string
		pid      int
		path     string
		ok       bool
	}{
		{"/proc/4194000 (deleted)", "/proc/self", 4194000, "/proc/4194000", true},
		{"/proc/4194000/fd", "/proc/self", 4194000, "/proc/4194000/fd", true}, // /proc/4194000 is gone
		{"/proc/" + self, "/proc/self", 0, "", false},                         // alive
		{"/proc/self (deleted)", "/proc/self", 0, "", false},
		{"/proc/007 (deleted)", "/proc/self", 0, "", false},
		{"/proc (deleted)", "/proc/self", 0, "", false},
		{"/tmp/x (deleted)", "/proc/self", 0, "", false},
		{"/proc/4194000 (deleted)", "/", 0, "", false}, // not procfs
	} {
		pid, path, ok := deadProcDir(tc.link, tc.at)
		if pid != tc.pid || path != tc.path || ok != tc.ok {
			t.Errorf("deadProcDir(%q, %q) = %d, %q, %v; want %d, %q, %v", tc.link, tc.at, pid, path, ok, tc.pid, tc.path, tc.ok)
		}
	}
}

package checkpoint

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCgroupRoots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paths []string
		asked string
		ok    bool
		want  []string
	}{
		{"one", []string{"/a"}, "", false, []string{"/a"}},
		{"nested", []string{"/a/b", "/a", "/c"}, "", false, []string{"/a", "/c"}},
		{"siblings by prefix", []string{"/ab", "/a"}, "", false, []string{"/a", "/ab"}},
		{"root", []string{"/", "/a"}, "", false, []string{"/"}},
		{"asked", []string{"/prefix/oldroot"}, "/prefix", true, []string{"/prefix"}},
		{"asked, one outside", []string{"/prefix/x", "/other"}, "/prefix", true, []string{"/prefix", "/other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, cgroupRoots(tc.paths, tc.asked, tc.ok)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

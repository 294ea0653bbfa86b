package procfs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCgroups(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Cgroup
		err      bool
	}{
		{"hybrid: v1 controllers, a named hierarchy, the unified one",
			"4:memory:/process_api/c5\n14:name=zdtmtst:/subcg00/subsubcg\n2:cpu,cpuacct:/\n0::/user.slice\n",
			[]Cgroup{{4, "memory", "/process_api/c5"}, {14, "name=zdtmtst", "/subcg00/subsubcg"}, {2, "cpu,cpuacct", "/"}, {0, "", "/user.slice"}}, false},
		{"a path with colons", "0::/a:b:c\n", []Cgroup{{0, "", "/a:b:c"}}, false},
		{"no path", "3:cpu\n", nil, true},
		{"a relative path", "3:cpu:x\n", nil, true},
		{"a bad id", "x:cpu:/\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCgroups([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("error = %v, want error %v", err, tc.err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("cgroups (-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParseCgroups(f *testing.F) {
	addSeeds(f, "cgroup-", "/proc/self/cgroup")
	f.Fuzz(func(t *testing.T, b []byte) {
		cgs, err := ParseCgroups(b)
		if err != nil {
			return
		}
		var lines []string
		for _, c := range cgs {
			if c.ID < 0 || !strings.HasPrefix(c.Path, "/") {
				t.Fatalf("bad cgroup %+v", c)
			}
			lines = append(lines, fmt.Sprintf("%d:%s:%s", c.ID, c.Controllers, c.Path))
		}
		again, err := ParseCgroups([]byte(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if d := cmp.Diff(cgs, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

package cgroup

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A hierarchy is mounted with its controllers, or with "none" when it only
// has a name; a cpuset one needs its new cgroups filled.
func TestHierarchyKinds(t *testing.T) {
	type kind struct{ Controller, Cpuset bool }
	for _, tc := range []struct {
		controllers string
		want        kind
	}{
		{"name=systemd", kind{false, false}},
		{"cpu,cpuacct", kind{true, false}},
		{"cpuset", kind{true, true}},
		{"cpuset,name=x", kind{true, true}},
		{"name=cpuset", kind{false, false}},
	} {
		got := kind{hasController(tc.controllers), hasCpuset(tc.controllers)}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.controllers, d)
		}
	}
}

package restart

import (
	"testing"

	"github.com/crsub/crsub/ckpt"
)

func TestCgroupPath(t *testing.T) {
	s := &restorer{
		opts: Options{CgroupRoot: map[string]string{"memory": "/new/ctr", "": "/u/ctr2", "name=systemd": "/sd"}},
		rootCgroups: []ckpt.Cgroup{
			{Controllers: "memory", Path: "/old/ctr"},
			{Controllers: "", Path: "/old/u"},
			{Controllers: "cpu,cpuacct", Path: "/old/cpu"},
			{Controllers: "name=systemd", Path: "/"},
		},
	}
	for _, tc := range []struct {
		in   ckpt.Cgroup
		want string
	}{
		{ckpt.Cgroup{Controllers: "memory", Path: "/old/ctr"}, "/new/ctr"},
		{ckpt.Cgroup{Controllers: "memory", Path: "/old/ctr/sub/deeper"}, "/new/ctr/sub/deeper"},
		{ckpt.Cgroup{Controllers: "memory", Path: "/old/ctr-other"}, "/old/ctr-other"}, // a sibling, not below
		{ckpt.Cgroup{Controllers: "memory", Path: "/old"}, "/old"},                     // above the root's
		{ckpt.Cgroup{Controllers: "", Path: "/old/u/x"}, "/u/ctr2/x"},
		{ckpt.Cgroup{Controllers: "cpu,cpuacct", Path: "/old/cpu/x"}, "/old/cpu/x"}, // no new root for it
		{ckpt.Cgroup{Controllers: "name=systemd", Path: "/a/b"}, "/sd/a/b"},         // the root's is /
		{ckpt.Cgroup{Controllers: "pids", Path: "/p"}, "/p"},
	} {
		if got := s.cgroupPath(tc.in); got != tc.want {
			t.Errorf("cgroupPath(%+v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A new root named for one controller of a shared hierarchy moves
	// the whole hierarchy.
	s.opts.CgroupRoot = map[string]string{"cpuacct": "/n"}
	if got := s.cgroupPath(ckpt.Cgroup{Controllers: "cpu,cpuacct", Path: "/old/cpu/x"}); got != "/n/x" {
		t.Errorf("cpu,cpuacct under a cpuacct root: %q, want /n/x", got)
	}
}

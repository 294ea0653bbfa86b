package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// A cgroup made through a hierarchy is there for others, and goes with
// RemoveCreated; the mount that reached it is nowhere to be seen and
// leaves no fd once closed.
func TestMoveMakesCgroupsThroughAMountOfItsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var controllers, path string
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		// The unified hierarchy where it is mounted alone, or the first
		// named v1 one.
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && strings.HasPrefix(f[1], "name=") {
			controllers, path = f[1], f[2]
			break
		}
	}
	if controllers == "" {
		t.Skip("no named v1 hierarchy here")
	}
	mounts := func() string { b, _ := os.ReadFile("/proc/self/mountinfo"); return string(b) }
	before := mounts()
	var h Hierarchies
	sub := filepath.Join(path, fmt.Sprintf("crsub-test-%d", os.Getpid()), "inner")
	if err := h.Move(controllers, sub, os.Getpid(), false); err != nil {
		t.Fatal(err)
	}
	if got := readCgroup(t, controllers); got != sub {
		t.Errorf("in cgroup %q of %s, want %q", got, controllers, sub)
	}
	if mounts() != before {
		t.Errorf("the hierarchy's mount shows in mountinfo:\n%s", mounts())
	}
	if err := h.Move(controllers, path, os.Getpid(), false); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveCreated(); err != nil {
		t.Fatal(err)
	}
	root := h.mounts[controllers].dir
	if _, err := os.Stat(filepath.Join(root, filepath.Dir(sub))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cgroups made are still there: %v", err)
	}
	fd := h.mounts[controllers].fd
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
		t.Errorf("fd %d is still open after Close", fd)
	}
}

func readCgroup(t *testing.T, controllers string) string {
	t.Helper()
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == controllers {
			return f[2]
		}
	}
	return ""
}

package cgroup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseRoot(t *testing.T) {
	type root struct{ Hierarchy, Path string }
	for _, tc := range []struct {
		in   string
		want root
		bad  bool
	}{
		{in: "/newroot", want: root{"", "/newroot"}},
		{in: "name=zdtmtst:/prefix", want: root{"name=zdtmtst", "/prefix"}},
		{in: "cpu:/a/b", want: root{"cpu", "/a/b"}},
		{in: "unified:/", want: root{"unified", "/"}},
		{in: "/a:/b", want: root{"", "/a:/b"}},
		{in: "relative", bad: true},
		{in: "cpu:/a/../b", bad: true},
		{in: "cpu,cpuacct:/a", bad: true},
		{in: "/a/", bad: true},
	} {
		h, p, err := ParseRoot(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseRoot(%q) = %q, %q; want an error", tc.in, h, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRoot(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, root{h, p}); d != "" {
			t.Errorf("ParseRoot(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func FuzzParseRoot(f *testing.F) {
	for _, s := range []string{"/x", "name=a:/b", "cpu:/", "::/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, p, err := ParseRoot(s)
		if err == nil && (p == "" || p[0] != '/' || filepath.Clean(p) != p) {
			t.Fatalf("ParseRoot(%q) accepted path %q", s, p)
		}
	})
}

func TestRootFor(t *testing.T) {
	roots := map[string]string{"": "/all", "name=zdtmtst": "/prefix", "memory": "/mem", Unified: "/v2"}
	for _, tc := range []struct {
		controllers, want string
	}{
		{"name=zdtmtst", "/prefix"},
		{"memory", "/mem"},
		{"cpu,cpuacct", "/all"},
		{"", "/v2"},
		{"name=zdtmtst.defaultroot", "/all"},
	} {
		if got, ok := RootFor(roots, tc.controllers); !ok || got != tc.want {
			t.Errorf("RootFor(%q) = %q, %v; want %q", tc.controllers, got, ok, tc.want)
		}
	}
	if got, ok := RootFor(map[string]string{"cpu": "/x"}, "memory"); ok {
		t.Errorf("RootFor of a hierarchy not named, without a default: %q", got)
	}
}

func TestSettingValues(t *testing.T) {
	for _, tc := range []struct {
		name, read, value string
		unchanged         bool
	}{
		{"memory.limit_in_bytes", "268435456\n", "268435456", false},
		{"memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n", "1", false},
		{"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n", "0", true},
		{"memory.swappiness", "60\n", "60", true},
		{"cgroup.type", "domain\n", "domain", true},
		{"cgroup.type", "threaded\n", "threaded", false},
		{"net_prio.ifpriomap", "lo 0\neth0 0\n", "lo 0\neth0 0", true},
		{"net_prio.ifpriomap", "lo 0\neth0 5\n", "lo 0\neth0 5", false},
		{"devices.list", "c 1:3 rwm\nc 1:5 rwm\n", "c 1:3 rwm\nc 1:5 rwm", false},
	} {
		v := normalize(tc.name, tc.read)
		if v != tc.value || unchanged(tc.name, v) != tc.unchanged {
			t.Errorf("%s %q: value %q unchanged %v; want %q %v", tc.name, tc.read, v, unchanged(tc.name, v), tc.value, tc.unchanged)
		}
	}
}

// A named v1 hierarchy's cgroups, with owners, modes and a setting, read
// and made again after they were removed, are as they were.
func TestReadMake(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a cgroup hierarchy")
	}
	const controllers = "name=crsubtest"
	var h Hierarchies
	defer h.Close()
	root, err := h.mount(controllers)
	if err != nil {
		t.Skip(err)
	}
	top := filepath.Join(root, "crsub-test-tree")
	for _, d := range []string{top, top + "/a", top + "/a/empty", top + "/b"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, d := range []string{top + "/a/empty", top + "/a", top + "/b", top} {
			_ = unix.Rmdir(d)
		}
	}()
	if err := os.Chmod(top+"/a", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(top+"/b", 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(top+"/a/notify_on_release", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(top+"/a/cgroup.procs", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	before, err := h.Read(controllers, "/crsub-test-tree", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 4 {
		t.Fatalf("read %d cgroups, want 4: %+v", len(before), before)
	}
	for _, d := range []string{top + "/a/empty", top + "/a", top + "/b"} {
		if err := unix.Rmdir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Make(controllers, before, func(p string) string { return p }, Policy{Create: true, OwnExisting: true}); err != nil {
		t.Fatal(err)
	}
	after, err := h.Read(controllers, "/crsub-test-tree", true)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("made again (-read +after):\n%s", d)
	}
	if err := h.Make(controllers, before, func(p string) string { return p }, Policy{Create: true, FailExisting: true}); err == nil {
		t.Errorf("Make with FailExisting over existing cgroups succeeded")
	}
	if err := h.RemoveCreated(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(top + "/a"); !os.IsNotExist(err) {
		t.Errorf("RemoveCreated left %s/a: %v", top, err)
	}
}

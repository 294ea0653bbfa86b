package restart

import "testing"

// The recorded roots of a hierarchy go where --cgroup-root puts them, with
// what is below them; a hierarchy without a new root keeps its paths.
func TestCgroupPath(t *testing.T) {
	s := &restorer{
		opts: Options{CgroupRoots: map[string]string{"": "/newroot", "name=zdtmtst": "/prefix", "name=keep": "/"}},
		cgroupRoots: map[string][]string{
			"name=zdtmtst":             {"/prefix"},
			"name=zdtmtst.defaultroot": {"/prefix/oldroot"},
			"cpu":                      {"/"},
			"memory":                   {"/a", "/a/b/c", "/d"},
			"name=keep":                {"/x/y"},
		},
	}
	for _, tc := range []struct{ controllers, path, want string }{
		{"name=zdtmtst", "/prefix/oldroot", "/prefix/oldroot"},
		{"name=zdtmtst.defaultroot", "/prefix/oldroot", "/newroot"},
		{"name=zdtmtst.defaultroot", "/prefix/oldroot/sub", "/newroot/sub"},
		{"cpu", "/", "/newroot"},
		{"cpu", "/s", "/newroot/s"},
		{"memory", "/a/b", "/newroot/b"},
		{"memory", "/a/b/c/d", "/newroot/d"},
		{"memory", "/d", "/newroot"},
		{"pids", "/unrecorded", "/newroot"},
		{"name=keep", "/x/y/z", "/z"},
	} {
		if got := s.cgroupPath(tc.controllers, tc.path); got != tc.want {
			t.Errorf("cgroupPath(%q, %q) = %q, want %q", tc.controllers, tc.path, got, tc.want)
		}
	}
	s.opts.CgroupRoots = nil
	if got := s.cgroupPath("cpu", "/s"); got != "/s" {
		t.Errorf("without new roots: %q, want /s", got)
	}
}

func TestParseCgroupMode(t *testing.T) {
	for _, m := range []CgroupMode{CgroupsCreate, CgroupsIgnore, CgroupsJoin, CgroupsSettings, CgroupsFull, CgroupsStrict} {
		if got, err := ParseCgroupMode(m.String()); err != nil || got != m {
			t.Errorf("ParseCgroupMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseCgroupMode("soft"); err == nil {
		t.Errorf("ParseCgroupMode(soft) succeeded")
	}
}

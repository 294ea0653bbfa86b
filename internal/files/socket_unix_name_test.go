package files

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A removed socket name's directories are made for the bind and removed
// after, down to what was there; what is at the name is moved aside and
// back.
func TestRemovedNameClearing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exists   []string // directories there before, under the test's root
		dir      string   // the name's directory
		wantTop  string   // the topmost directory makeDirs makes
		occupied bool     // a file at the name
	}{
		{"directory there", []string{"a"}, "a", "", false},
		{"one level gone", []string{"a"}, "a/b", "a/b", false},
		{"two levels gone", nil, "a/b", "a", false},
		{"name taken", []string{"a"}, "a", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			// The directories made are owned as the one they are made in.
			const uid, gid = 4242, 4243
			if os.Geteuid() == 0 {
				if err := os.Chown(root, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range tc.exists {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(filepath.Join(root, d), uid, gid); err != nil && os.Geteuid() == 0 {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(root, tc.dir)
			path := filepath.Join(dir, "sock")
			top, err := makeDirs(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tc.wantTop != "" {
				want = filepath.Join(root, tc.wantTop)
			}
			if top != want {
				t.Errorf("makeDirs made %q up, want %q", top, want)
			}
			for d := dir; top != "" && os.Geteuid() == 0; d = filepath.Dir(d) {
				var st unix.Stat_t
				if err := unix.Stat(d, &st); err != nil {
					t.Fatal(err)
				}
				if st.Uid != uid || st.Gid != gid {
					t.Errorf("%s made owned by %d:%d, want %d:%d as the directory it is in", d, st.Uid, st.Gid, uid, gid)
				}
				if d == top {
					break
				}
			}
			if tc.occupied {
				if err := os.WriteFile(path, []byte("fifo"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			parked, err := parkAside(path)
			if err != nil {
				t.Fatal(err)
			}
			if (parked != "") != tc.occupied {
				t.Errorf("parked %q with the name occupied %v", parked, tc.occupied)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("the name is not free: %v", err)
			}
			if parked != "" {
				if err := os.Rename(parked, path); err != nil {
					t.Fatal(err)
				}
			}
			removeDirs(dir, top)
			for _, d := range tc.exists {
				if _, err := os.Stat(filepath.Join(root, d)); err != nil {
					t.Errorf("%s was there and is gone: %v", d, err)
				}
			}
			if top != "" {
				if _, err := os.Lstat(top); !os.IsNotExist(err) {
					t.Errorf("%s was made and stays: %v", top, err)
				}
			}
			if b, err := os.ReadFile(path); tc.occupied && (err != nil || string(b) != "fifo") {
				t.Errorf("what was at the name is not back: %q, %v", b, err)
			}
		})
	}
}

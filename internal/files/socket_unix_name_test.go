package files

import (
	"os"
	"path/filepath"
	"testing"
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
			for _, d := range tc.exists {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
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

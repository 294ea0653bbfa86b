package files

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNameOnMount(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	removed, other := filepath.Join(dir, "gone"), filepath.Join(sub, "kept")
	if err := os.WriteFile(removed, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(removed, other); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(removed, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	view := MountView{Pid: os.Getpid(), Path: dir}
	tests := []struct {
		name     string
		dev, ino uint64
		want     string
	}{
		{"the other link", st.Dev, st.Ino, other},
		{"no such inode", st.Dev, ^uint64(0), ""},
		{"another filesystem", st.Dev + 1, st.Ino, ""},
	}
	for _, tt := range tests {
		if got := nameOnMount(view, tt.dev, tt.ino); got != tt.want {
			t.Errorf("%s: nameOnMount = %q, want %q", tt.name, got, tt.want)
		}
	}
}

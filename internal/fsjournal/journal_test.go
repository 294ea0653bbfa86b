package fsjournal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// names lists what a directory holds.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// A journal whose maker died lists names made; the next restart removes
// those still the files made, keeps those another file has since, and
// says nothing of the names removed already.
func TestRemoveAbandoned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: open_by_handle_at")
	}
	state, dir := t.TempDir(), t.TempDir()
	j, err := Open(state)
	if err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	makers := map[string]func(string) error{
		"ghost":    func(p string) error { return os.WriteFile(p, []byte("data"), 0o600) },
		"dir":      func(p string) error { return os.Mkdir(p, 0o700) },
		"fifo":     func(p string) error { return unix.Mkfifo(p, 0o600) },
		"link":     func(p string) error { return os.Symlink("/nowhere", p) },
		"replaced": func(p string) error { return os.WriteFile(p, []byte("mine"), 0o600) },
		"removed":  func(p string) error { return os.WriteFile(p, nil, 0o600) },
		"gone":     func(p string) error { return os.WriteFile(p, nil, 0o600) },
	}
	for name, mk := range makers {
		if err := mk(path(name)); err != nil {
			t.Fatal(err)
		}
		if err := j.Made(path(name)); err != nil {
			t.Fatal(err)
		}
	}
	// Listed before it has its name: an unnamed file linked in, and one
	// its maker died before linking.
	for _, name := range []string{"linked", "never linked"} {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := j.Making(path(name), fd); err != nil {
			t.Fatal(err)
		}
		if name == "linked" {
			if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path(name), unix.AT_SYMLINK_FOLLOW); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Removed by the restart, which said so; and one removed by someone
	// else, unsaid.
	for _, name := range []string{"removed", "gone"} {
		if err := os.Remove(path(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Removed(path("removed")); err != nil {
		t.Fatal(err)
	}
	// Another file under a name the restart made: kept.
	if err := os.Remove(path("replaced")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("replaced"), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A live maker's journal is left alone.
	done, err := RemoveAbandoned(state)
	if err != nil || len(done) != 0 {
		t.Fatalf("with its maker alive: %v, %v", done, err)
	}
	// The maker dies: its lock goes with its fd.
	j.file.Close()

	done, err = RemoveAbandoned(state)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(done, func(a, b int) bool { return done[a].Path < done[b].Path })
	want := []Abandoned{
		{Path: path("dir"), Removed: true},
		{Path: path("fifo"), Removed: true},
		{Path: path("ghost"), Removed: true},
		{Path: path("link"), Removed: true},
		{Path: path("linked"), Removed: true},
		{Path: path("replaced"), Kept: "another file has the name now"},
	}
	if diff := cmp.Diff(want, done); diff != "" {
		t.Errorf("done (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"replaced"}, names(t, dir)); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{}, names(t, state)); diff != "" {
		t.Errorf("journals left (-want +got):\n%s", diff)
	}
}

// A journal whose names were all removed goes at Close; one that lists a
// name still there stays, for the next restart.
func TestClose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		remove   bool
		journals int
	}{
		{"every name removed", true, 0},
		{"a name left", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, dir := t.TempDir(), t.TempDir()
			j, err := Open(state)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := j.Made(p); err != nil {
				t.Fatal(err)
			}
			if tc.remove {
				os.Remove(p)
				if err := j.Removed(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if got := len(names(t, state)); got != tc.journals {
				t.Errorf("%d journals left, want %d", got, tc.journals)
			}
		})
	}
}

// A nil Journal (no state directory) lists nothing and fails nothing.
func TestNilJournal(t *testing.T) {
	var j *Journal
	if err := j.Made("/nonexistent"); err != nil {
		t.Error(err)
	}
	if err := j.Removed("/nonexistent"); err != nil {
		t.Error(err)
	}
	if err := j.Close(); err != nil {
		t.Error(err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []entry
		wantErr bool
	}{
		{"empty", "", []entry{}, false},
		{"made and removed", `{"path":"/a","dev":1,"ino":2}` + "\n" + `{"gone":1}` + "\n",
			[]entry{{Path: "/a", Dev: 1, Ino: 2}, {Gone: 1}}, false},
		{"last line cut short", `{"path":"/a","dev":1,"ino":2}` + "\n" + `{"path":"/b","de`,
			[]entry{{Path: "/a", Dev: 1, Ino: 2}}, false},
		{"removed before made", `{"gone":1}` + "\n", nil, true},
		{"relative path", `{"path":"a"}` + "\n", nil, true},
		{"unknown field", `{"path":"/a","x":1}` + "\n", nil, true},
		{"two entries on a line", `{"path":"/a"}{"path":"/b"}` + "\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"path":"/a","dev":1,"ino":2,"parent":{"type":1,"bytes":"AAEC"}}` + "\n" + `{"gone":1}` + "\n"))
	f.Add([]byte(`{"path":"/a","dir":true}` + "\n" + `{"path":"/b"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := parse(b)
		if err != nil {
			return
		}
		made := 0
		for _, e := range list {
			if e.Gone == 0 {
				made++
			} else if e.Gone < 0 || e.Gone > made {
				t.Fatalf("entry removes name %d of %d", e.Gone, made)
			}
		}
	})
}

// A journal as an earlier crsub wrote it, by its name and lines alone
// (one with no file handles, as on a filesystem that gives none), is
// read and cleaned.
func TestRemoveAbandonedWritten(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	lines := fmt.Sprintf(`{"path":%q,"dev":%d,"ino":%d}`+"\n"+`{"path":"/nowhere/g","dev":1,"ino":2}`+"\n"+`{"gone":2}`+"\n", p, st.Dev, st.Ino)
	if err := os.WriteFile(filepath.Join(state, "restart-1-2.files"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	done, err := RemoveAbandoned(state)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Abandoned{{Path: p, Removed: true}}, done); diff != "" {
		t.Errorf("done (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{}, names(t, dir)); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{}, names(t, state)); diff != "" {
		t.Errorf("journals left (-want +got):\n%s", diff)
	}
}

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

func TestParseJournal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []journalEntry
		err      string
	}{
		{"empty", "", []journalEntry{}, ""},
		{"entries", "{\"hierarchy\":\"name=systemd\",\"path\":\"/a\"}\n{\"hierarchy\":\"\",\"path\":\"/a/b\"}\n",
			[]journalEntry{{"name=systemd", "/a"}, {"", "/a/b"}}, ""},
		{"the last line cut short", "{\"hierarchy\":\"cpu\",\"path\":\"/a\"}\n{\"hierarchy\":\"cp",
			[]journalEntry{{"cpu", "/a"}}, ""},
		{"a bad line", "{\"hierarchy\":\"cpu\"\n", nil, "line 1"},
		{"an unknown field", "{\"hierarchy\":\"cpu\",\"path\":\"/a\",\"x\":1}\n", nil, "line 1"},
		{"two entries on a line", "{\"hierarchy\":\"cpu\",\"path\":\"/a\"}{\"hierarchy\":\"cpu\",\"path\":\"/b\"}\n", nil, "line 1"},
		{"a path not clean", "{\"hierarchy\":\"cpu\",\"path\":\"/a/../..\"}\n", nil, "not a clean absolute path"},
		{"a relative path", "{\"hierarchy\":\"cpu\",\"path\":\"a\"}\n", nil, "not a clean absolute path"},
		{"a hierarchy with a slash", "{\"hierarchy\":\"../x\",\"path\":\"/a\"}\n", nil, "bad hierarchy"},
	} {
		got, err := parseJournal([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte("{\"hierarchy\":\"name=systemd\",\"path\":\"/a\"}\n{\"hierarchy\":\"\",\"path\":\"/a/b\"}\n"))
	f.Add([]byte("{\"hierarchy\":\"cp"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseJournal(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if _, err := cleanPath(e.Path); err != nil || strings.ContainsAny(e.Controllers, "\x00/") {
				t.Fatalf("entry %+v taken", e)
			}
		}
	})
}

// The cgroups a Hierarchies made and never removed nor kept (its process
// killed) are removed by the next one with the same journal, but for one
// whose mark is not the journal's and one tasks run in; the journal goes.
// A journal whose maker lives is left alone.
func TestRemoveAbandoned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const controllers = "name=systemd"
	base := fmt.Sprintf("/crsub-journal-test-%d", os.Getpid())
	state := t.TempDir()
	made := &Hierarchies{Journal: state}
	dirs := []ckpt.CgroupDir{{Path: base, Mode: 0o755}, {Path: base + "/a", Mode: 0o755}, {Path: base + "/a/b", Mode: 0o755},
		{Path: base + "/busy", Mode: 0o755}, {Path: base + "/unmarked", Mode: 0o755}}
	if err := made.Make(controllers, dirs, func(p string) string { return p }, Policy{Create: true}); err != nil {
		t.Skip(err) // no such hierarchy here
	}
	root := made.mounts[controllers].dir
	t.Cleanup(func() {
		for i := len(dirs) - 1; i >= 0; i-- {
			unix.Rmdir(filepath.Join(root, dirs[i].Path))
		}
		made.Close()
	})
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	if err := made.Move(controllers, base+"/busy", sleeper.Process.Pid, false); err != nil {
		t.Fatal(err)
	}
	if err := unix.Removexattr(filepath.Join(root, base, "unmarked"), markAttr); err != nil {
		t.Fatal(err)
	}
	journals, _ := filepath.Glob(filepath.Join(state, "*"+journalSuffix))
	if len(journals) != 1 {
		t.Fatalf("journals %v, want one", journals)
	}

	// Its maker holds it: nothing is done.
	next := &Hierarchies{Journal: state}
	defer next.Close()
	if done, err := next.RemoveAbandoned(); err != nil || len(done) != 0 {
		t.Fatalf("with the maker alive: %+v, %v", done, err)
	}

	// The maker goes as a killed process does: its fds closed, nothing
	// removed.
	made.journal.Close()
	made.journal = nil
	done, err := next.RemoveAbandoned()
	if err != nil {
		t.Fatal(err)
	}
	want := []Abandoned{
		{controllers, base + "/unmarked", false, "not marked as made by the restart that listed it"},
		{controllers, base + "/busy", false, "tasks run in it"},
		{controllers, base + "/a/b", true, ""},
		{controllers, base + "/a", true, ""},
		{controllers, base, false, "cgroups below it are kept"},
	}
	if d := cmp.Diff(want, done); d != "" {
		t.Errorf("RemoveAbandoned (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(root, base, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s/a is still there: %v", base, err)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "*")); len(left) != 0 {
		t.Errorf("left in the state directory: %v", left)
	}
}

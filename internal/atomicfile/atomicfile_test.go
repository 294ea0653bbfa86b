package atomicfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dirState is what a directory holds: name → contents and mode.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		got[e.Name()] = info.Mode().Perm().String() + " " + string(b)
	}
	return got
}

func TestCommitAndAbort(t *testing.T) {
	tests := []struct {
		name   string
		before map[string]string // existing files, contents
		commit bool
		want   map[string]string
	}{
		{"commit makes the file", nil, true, map[string]string{"img": "-rw------- new"}},
		{"commit replaces the file", map[string]string{"img": "old"}, true, map[string]string{"img": "-rw------- new"}},
		{"abort leaves nothing", nil, false, map[string]string{}},
		{"abort keeps the old file", map[string]string{"img": "old"}, false, map[string]string{"img": "-rw-r--r-- old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.before {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Create(filepath.Join(dir, "img"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("new"); err != nil {
				t.Fatal(err)
			}
			if tt.commit {
				if err := f.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			f.Abort()
			if diff := cmp.Diff(tt.want, dirState(t, dir)); diff != "" {
				t.Errorf("directory (-want +got):\n%s", diff)
			}
		})
	}
}

// A writer killed with SIGKILL halfway leaves nothing behind.
func TestKilledWriterLeavesNothing(t *testing.T) {
	if os.Getenv("ATOMICFILE_WRITER") != "" {
		f, err := Create(os.Getenv("ATOMICFILE_WRITER"))
		if err != nil {
			os.Exit(2)
		}
		f.Write(make([]byte, 1<<20))
		os.Stdout.WriteString("written\n")
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterLeavesNothing$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_WRITER="+filepath.Join(dir, "img"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := out.Read(buf); err != nil {
		t.Fatalf("writer: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if diff := cmp.Diff(map[string]string{}, dirState(t, dir)); diff != "" {
		t.Errorf("directory after the writer's death (-want +got):\n%s", diff)
	}
}

// Where a named temporary had to be used, the next writer of the same
// destination removes those of writers that are gone, and no other file.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "img")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	files := []string{
		filepath.Base(tempName(dest, dead.Process.Pid)), // gone: removed
		filepath.Base(tempName(dest, os.Getpid())),      // alive: kept
		".img.tmp-123456789",                            // not ours: kept
		".other.tmp-1-00000000",                         // another image's: kept
		"img",
	}
	for _, name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(dest)
	var got []string
	for name := range dirState(t, dir) {
		got = append(got, name)
	}
	slices.Sort(got)
	want := slices.Clone(files[1:])
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

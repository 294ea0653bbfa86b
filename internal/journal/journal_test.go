package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type entry struct {
	Path string `json:"path"`
}

func checkEntry(e entry) error {
	if !strings.HasPrefix(e.Path, "/") {
		return errors.New("relative path")
	}
	return nil
}

func parse(b []byte) ([]entry, error) { return Parse(b, checkEntry) }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []entry
		err      string
	}{
		{"empty", "", []entry{}, ""},
		{"entries", "{\"path\":\"/a\"}\n{\"path\":\"/b\"}\n", []entry{{"/a"}, {"/b"}}, ""},
		{"the last line cut short", "{\"path\":\"/a\"}\n{\"pa", []entry{{"/a"}}, ""},
		{"a bad line", "{\"path\":\"/a\"\n", nil, "line 1"},
		{"an unknown field", "{\"path\":\"/a\"}\n{\"path\":\"/b\",\"x\":1}\n", nil, "line 2: json: unknown field"},
		{"two entries on a line", "{\"path\":\"/a\"}{\"path\":\"/b\"}\n", nil, "line 1: more than one entry"},
		{"an entry check refuses", "{\"path\":\"a\"}\n", nil, "line 1: relative path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("{\"path\":\"/a\"}\n{\"path\":\"/b\"}\n"))
	f.Add([]byte("{\"path\":\"/a\"}\n{\"pa"))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := parse(b)
		if err != nil {
			return
		}
		if n := strings.Count(string(b), "\n"); len(list) != n {
			t.Fatalf("%d entries of %d lines", len(list), n)
		}
		for _, e := range list {
			if checkEntry(e) != nil {
				t.Fatalf("entry %+v taken", e)
			}
		}
	})
}

// A journal its maker holds is left alone; once let go, its entries are
// handed over and it is removed, unless kept or cleaning it failed.
// Another kind's journals, in the same directory, are not touched.
func TestAbandoned(t *testing.T) {
	dir := t.TempDir()
	other, err := Create(dir, ".other")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	j, err := Create(dir, ".test")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a", "/b"} {
		if err := j.Append(entry{p}); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]entry
	clean := func(keep bool, err error) func(string, []entry) (bool, error) {
		return func(name string, es []entry) (bool, error) {
			if name != j.Name() {
				t.Errorf("handed %s, want %s", name, j.Name())
			}
			got = append(got, es)
			return keep, err
		}
	}
	if err := Abandoned(dir, ".test", parse, clean(false, nil)); err != nil || got != nil {
		t.Fatalf("with its maker alive: %v, %v", got, err)
	}
	j.Close()

	if err := Abandoned(dir, ".test", parse, clean(true, nil)); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("failed")
	if err := Abandoned(dir, ".test", parse, clean(false, failed)); !errors.Is(err, failed) || !strings.Contains(err.Error(), filepath.Base(j.Name())) {
		t.Fatalf("error %v, want %v naming the journal", err, failed)
	}
	if _, err := os.Stat(j.Name()); err != nil {
		t.Fatalf("journal kept or failed is gone: %v", err)
	}
	if err := Abandoned(dir, ".test", parse, clean(false, nil)); err != nil {
		t.Fatal(err)
	}
	want := [][]entry{{{"/a"}, {"/b"}}, {{"/a"}, {"/b"}}, {{"/a"}, {"/b"}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entries handed (-want +got):\n%s", d)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if d := cmp.Diff([]string{other.Name()}, left); d != "" {
		t.Errorf("left (-want +got):\n%s", d)
	}
}

// A journal removed by its maker is gone at once.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	j, err := Create(dir, ".test")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

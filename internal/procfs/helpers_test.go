package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testdataFiles returns the testdata files whose names start with prefix,
// for fuzz seeds: every one was read from /proc on the development machine.
func testdataFiles(t testing.TB, prefix string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if !e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			out[e.Name()] = readTestdata(t, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no testdata files start with %q", prefix)
	}
	return out
}

// wantErrContaining checks err against a wanted substring; "" means no error.
func wantErrContaining(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
	return false
}

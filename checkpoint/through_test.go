package checkpoint

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeLog keeps each write it is given, and whether it was the caller's
// own bytes rather than a copy.
type writeLog struct {
	writes []int
	passed []bool
	all    bytes.Buffer
	large  []byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	w.passed = append(w.passed, len(p) > 0 && len(w.large) > 0 && &p[0] == &w.large[0])
	w.all.Write(p)
	return len(p), nil
}

func TestThroughWriter(t *testing.T) {
	header := []byte("header")
	large := bytes.Repeat([]byte{7}, 64<<10)
	for _, tc := range []struct {
		name       string
		writes     [][]byte
		wantWrites []int
		wantPassed []bool
	}{
		{"a header, then pages", [][]byte{header, large}, []int{len(header), len(large)}, []bool{false, true}},
		{"pages alone", [][]byte{large}, []int{len(large)}, []bool{true}},
		{"small writes gathered", [][]byte{header, header}, []int{2 * len(header)}, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &writeLog{large: large}
			w := throughWriter{bufio.NewWriterSize(log, 16<<10)}
			var want bytes.Buffer
			for _, b := range tc.writes {
				if n, err := w.Write(b); err != nil || n != len(b) {
					t.Fatalf("Write of %d bytes: %d, %v", len(b), n, err)
				}
				want.Write(b)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(log.all.Bytes(), want.Bytes()) {
				t.Fatal("the bytes written differ from those given")
			}
			if diff := cmp.Diff(tc.wantWrites, log.writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPassed, log.passed); diff != "" {
				t.Errorf("passed through uncopied (-want +got):\n%s", diff)
			}
		})
	}
}

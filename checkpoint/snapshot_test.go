package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// An in-memory image interleaving written bytes with deferred payloads
// reads back in order once resolved, and the bytes written between
// placeholders share chunks instead of taking a fresh one each: an 8 MiB
// chunk per pages record used to be allocated and cleared while the
// process was frozen.
func TestMemoryWriterDeferred(t *testing.T) {
	w := newMemoryWriter(0, 0)
	var want bytes.Buffer
	const records = 200
	for i := range records {
		head := []byte(fmt.Sprintf("header %d;", i))
		if _, err := w.Write(head); err != nil {
			t.Fatal(err)
		}
		want.Write(head)
		payload := bytes.Repeat([]byte{byte(i)}, 5000+i)
		w.Defer(int64(len(payload)), func(pw io.Writer) error {
			_, err := pw.Write(payload)
			return err
		})
		want.Write(payload)
	}
	tail := []byte("the end")
	if _, err := w.Write(tail); err != nil {
		t.Fatal(err)
	}
	want.Write(tail)

	backing := map[*byte]bool{}
	for _, c := range w.im.chunks {
		if cap(c) > 0 {
			backing[&c[:cap(c)][cap(c)-1]] = true
		}
	}
	if len(backing) != 1 {
		t.Errorf("the written bytes of %d records lie in %d allocations, want 1", records, len(backing))
	}
	if err := w.resolve(); err != nil {
		t.Fatal(err)
	}
	if w.im.Size() != int64(want.Len()) {
		t.Errorf("Size() = %d, want %d", w.im.Size(), want.Len())
	}
	got, err := io.ReadAll(w.im.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("image differs from what was written: %d bytes, want %d", len(got), want.Len())
	}
	var out bytes.Buffer
	if _, err := w.im.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Errorf("WriteTo differs from what was written: %d bytes, want %d", out.Len(), want.Len())
	}
}

// A snapshot is refused when its image would not leave an eighth of the
// available memory, with the sizes in the error.
func TestFits(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		need, available int64
		ok              bool
	}{
		{need: 1 * gib, available: 20 * gib, ok: true},
		{need: 7 * gib, available: 8 * gib, ok: true},
		{need: 7*gib + 1, available: 8 * gib, ok: false},
		{need: 30 * gib, available: 20 * gib, ok: false},
		{need: 0, available: 0, ok: true},
	} {
		err := fits(42, tc.need, tc.available)
		var memErr *MemoryError
		switch {
		case tc.ok && err != nil:
			t.Errorf("need %d of %d: %v", tc.need, tc.available, err)
		case !tc.ok && !errors.As(err, &memErr):
			t.Errorf("need %d of %d: %v, want a MemoryError", tc.need, tc.available, err)
		case !tc.ok && (memErr.Need != tc.need || memErr.Available != tc.available || !strings.Contains(err.Error(), "pid 42")):
			t.Errorf("need %d of %d: %+v: %v", tc.need, tc.available, memErr, err)
		}
	}
}

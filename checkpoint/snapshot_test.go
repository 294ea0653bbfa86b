package checkpoint

import (
	"bytes"
	"fmt"
	"io"
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

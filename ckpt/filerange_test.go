package ckpt

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rangeTaker keeps the file ranges it is given in order among the bytes,
// and resolves them into an image by reading the file.
type rangeTaker struct {
	parts []any // []byte or takenRange
}

type takenRange struct {
	f      *os.File
	off, n int64
}

func (r *rangeTaker) Write(b []byte) (int, error) {
	r.parts = append(r.parts, bytes.Clone(b))
	return len(b), nil
}

func (r *rangeTaker) TakeRange(f *os.File, off, n int64) {
	r.parts = append(r.parts, takenRange{f, off, n})
}

func (r *rangeTaker) bytes(t *testing.T) []byte {
	var out []byte
	for _, p := range r.parts {
		switch p := p.(type) {
		case []byte:
			out = append(out, p...)
		case takenRange:
			b := make([]byte, p.n)
			if _, err := p.f.ReadAt(b, p.off); err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

// TestWriteFileRange writes a payload from the middle of a file, to a
// destination that takes it by reference and to one given the bytes: both
// read back as the same records, with a checksum the reader accepts.
func TestWriteFileRange(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "pages")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := []byte("xxxxpayload held in a fileyyyy")
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	payload := content[4 : len(content)-4]
	crc := PayloadChecksum(PayloadChecksum(0, payload[:7]), payload[7:])
	write := func(dst io.Writer, crc uint32) error {
		w, err := NewWriter(dst, testHeader())
		if err != nil {
			return err
		}
		if err := w.WriteFileRange(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 7}, f, 4, int64(len(payload)), crc); err != nil {
			return err
		}
		if err := w.WriteWithPayload(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 8}, 3, func(pw io.Writer) error {
			_, err := pw.Write([]byte("end"))
			return err
		}); err != nil {
			return err
		}
		return w.Close()
	}
	want := []readRecord{
		{Type: TypePipe, Objref: 1, Meta: `{"inode":7,"size":0}`, Payload: string(payload)},
		{Type: TypePipe, Objref: 2, Meta: `{"inode":8,"size":0}`, Payload: "end"},
	}
	var plain bytes.Buffer
	if err := write(&plain, crc); err != nil {
		t.Fatal(err)
	}
	taker := &rangeTaker{}
	if err := write(taker, crc); err != nil {
		t.Fatal(err)
	}
	if !slicesHaveRange(taker.parts) {
		t.Error("the RangeTaker was given no range")
	}
	for name, img := range map[string][]byte{"bytes": plain.Bytes(), "by reference": taker.bytes(t)} {
		got, err := readAll(t, img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", name, diff)
		}
	}
	if !bytes.Equal(plain.Bytes(), taker.bytes(t)) {
		t.Error("the two images differ")
	}
	// A checksum that does not match the bytes is an error where the
	// bytes pass through the writer.
	if err := write(&bytes.Buffer{}, crc+1); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("wrong checksum: %v, want a checksum error", err)
	}
}

func slicesHaveRange(parts []any) bool {
	for _, p := range parts {
		if _, ok := p.(takenRange); ok {
			return true
		}
	}
	return false
}

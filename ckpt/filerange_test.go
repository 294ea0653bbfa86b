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
		return writeTwoRecords(dst, func(w *Writer) error {
			return w.WriteFileRange(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 7}, f, 4, int64(len(payload)), crc)
		})
	}
	want := twoRecords(payload)
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

// deferringTaker is a rangeTaker that also defers payloads, filling them
// (into a rangeTaker, or plain bytes with plain) when resolved, as an
// image kept in memory does.
type deferringTaker struct {
	rangeTaker
	plain    bool
	deferred map[int]func(io.Writer) error
}

func (d *deferringTaker) Defer(n int64, fill func(io.Writer) error) {
	if d.deferred == nil {
		d.deferred = map[int]func(io.Writer) error{}
	}
	d.deferred[len(d.parts)] = fill
	d.parts = append(d.parts, nil)
}

func (d *deferringTaker) resolve() error {
	var parts []any
	for i, p := range d.parts {
		fill, ok := d.deferred[i]
		if !ok {
			parts = append(parts, p)
			continue
		}
		var dst io.Writer
		sub := &rangeTaker{}
		var plain bytes.Buffer
		if dst = sub; d.plain {
			dst = &plain
		}
		if err := fill(dst); err != nil {
			return err
		}
		parts = append(parts, sub.parts...)
		if d.plain {
			parts = append(parts, plain.Bytes())
		}
	}
	d.parts = parts
	return nil
}

// TestWriteFileRanges writes a payload made of three ranges of a file to
// a stream, to a destination that defers payloads and takes ranges by
// reference, and to one that defers but takes bytes: all read back as the
// same records, with a checksum the reader accepts, and the ranges are
// taken by reference where they can be.
func TestWriteFileRanges(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "pages")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Ranges larger than the buffer they are read through, too.
	content := bytes.Repeat([]byte("0123456789abcdef"), 3*rangeBuf/16)
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	ranges := []FileRange{{Off: rangeBuf + 5, N: rangeBuf + 100}, {Off: 3, N: 10}, {Off: 2*rangeBuf + 7, N: 4096}}
	var payload []byte
	for _, r := range ranges {
		payload = append(payload, content[r.Off:r.Off+r.N]...)
	}
	write := func(dst io.Writer) error {
		return writeTwoRecords(dst, func(w *Writer) error {
			return w.WriteFileRanges(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 7}, f, ranges)
		})
	}
	want := twoRecords(payload)
	var plain bytes.Buffer
	if err := write(&plain); err != nil {
		t.Fatal(err)
	}
	images := map[string][]byte{"stream": plain.Bytes()}
	for name, d := range map[string]*deferringTaker{"by reference": {}, "deferred bytes": {plain: true}} {
		if err := write(d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := d.resolve(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := slicesHaveRange(d.parts); got == d.plain {
			t.Errorf("%s: ranges taken by reference: %v", name, got)
		}
		images[name] = d.bytes(t)
	}
	for name, img := range images {
		got, err := readAll(t, img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", name, diff)
		}
	}
}

// writeTwoRecords writes an image to dst: the record first writes, then a
// pipe record whose payload is "end", which shows the first one's end is
// where the reader expects it.
func writeTwoRecords(dst io.Writer, first func(*Writer) error) error {
	w, err := NewWriter(dst, testHeader())
	if err != nil {
		return err
	}
	if err := first(w); err != nil {
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

// twoRecords is what writeTwoRecords' image reads back as, its first
// record a pipe record with payload.
func twoRecords(payload []byte) []readRecord {
	return []readRecord{
		{Type: TypePipe, Objref: 1, Meta: `{"inode":7,"size":0}`, Payload: string(payload)},
		{Type: TypePipe, Objref: 2, Meta: `{"inode":8,"size":0}`, Payload: "end"},
	}
}

// TestWriteChecksummed writes a payload whose checksum the caller
// computed: the image reads back as one written with WriteWithPayload,
// and a checksum that does not match the bytes is what the reader
// reports.
func TestWriteChecksummed(t *testing.T) {
	payload := bytes.Repeat([]byte("pages "), 1000)
	write := func(crc uint32) []byte {
		var img bytes.Buffer
		if err := writeTwoRecords(&img, func(w *Writer) error {
			return w.WriteChecksummed(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 7}, payload, crc)
		}); err != nil {
			t.Fatal(err)
		}
		return img.Bytes()
	}
	var plain bytes.Buffer
	if err := writeTwoRecords(&plain, func(w *Writer) error {
		return w.WriteWithPayload(TypePipe, w.NewObjref(), nil, &Pipe{Inode: 7}, int64(len(payload)), func(pw io.Writer) error {
			_, err := pw.Write(payload)
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	img := write(PayloadChecksum(0, payload))
	if !bytes.Equal(img, plain.Bytes()) {
		t.Error("the image differs from one written with WriteWithPayload")
	}
	got, err := readAll(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(twoRecords(payload), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if _, err := readAll(t, write(PayloadChecksum(0, payload)+1)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("wrong checksum: %v, want a checksum error", err)
	}
}

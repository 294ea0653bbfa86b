package ckpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type readRecord struct {
	Type    Type
	Objref  Objref
	Deps    []Objref
	Meta    string
	Payload string
}

func testHeader() Header {
	return Header{Arch: "amd64", KernelRelease: "6.18.0", PageSize: 4096, Created: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Writer: "crsub test"}
}

// buildImage writes a small image with objects, dependencies and payloads.
func buildImage(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	proc := w.NewObjref()
	pipe := w.NewObjref()
	file := w.NewObjref()
	steps := []error{
		w.Write(TypeTree, 0, nil, &Tree{Processes: []TreeProcess{{Pid: 42, Pgid: 42, Sid: 42, Tids: []int{42}, Comm: "demo"}}}),
		w.Write(TypeProcess, proc, nil, &Process{Pid: 42, Comm: "demo", Cwd: "/", Umask: 0o22}),
		w.WriteWithPayload(TypePipe, pipe, nil, &Pipe{Inode: 7, Size: 65536}, 5, func(pw io.Writer) error {
			_, err := pw.Write([]byte("hello"))
			return err
		}),
		w.Write(TypeFile, file, []Objref{pipe}, &File{Kind: FilePipe, PipeEnd: "read"}),
		w.Write(TypeFd, 0, []Objref{proc, file}, &Fd{Pid: 42, Fd: 3, File: file}),
		w.Write(Type(0x7777), 0, []Objref{proc}, json_raw(`{"future":true}`)),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return buf.Bytes()
}

func json_raw(s string) []byte { return []byte(s) }

func readAll(t testing.TB, img []byte) ([]readRecord, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	var out []readRecord
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		p, err := io.ReadAll(rec.Payload())
		if err != nil {
			return out, err
		}
		out = append(out, readRecord{Type: rec.Type, Objref: rec.Objref, Deps: rec.Deps, Meta: string(rec.Meta), Payload: string(p)})
	}
}

func TestRoundTrip(t *testing.T) {
	img := buildImage(t)
	got, err := readAll(t, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []readRecord{
		{Type: TypeTree, Meta: `{"processes":[{"pid":42,"ppid":0,"pgid":42,"sid":42,"tids":[42],"comm":"demo"}]}`},
		{Type: TypeProcess, Objref: 1, Meta: `{"pid":42,"comm":"demo","cwd":"/","root":"","umask":18,"personality":0,"creds":{"uid":[0,0,0,0],"gid":[0,0,0,0],"cap_inh":0,"cap_prm":0,"cap_eff":0,"cap_bnd":0,"cap_amb":0},"rlimits":null,"itimers":[{"interval_us":0,"value_us":0},{"interval_us":0,"value_us":0},{"interval_us":0,"value_us":0}]}`},
		{Type: TypePipe, Objref: 2, Meta: `{"inode":7,"size":65536}`, Payload: "hello"},
		{Type: TypeFile, Objref: 3, Deps: []Objref{2}, Meta: `{"kind":"pipe","flags":0,"pos":0,"mode":0,"identity":{"path":"","dev":0,"inode":0,"size":0,"mtime_ns":0},"pipe_end":"read"}`},
		{Type: TypeFd, Deps: []Objref{1, 3}, Meta: `{"pid":42,"fd":3,"file":3}`},
		{Type: Type(0x7777), Deps: []Objref{1}, Meta: `{"future":true}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testHeader(), r.Header()); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

func TestPayloadOffset(t *testing.T) {
	img := buildImage(t)
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			t.Fatal("no pipe record")
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == TypePipe {
			off := rec.PayloadOffset()
			if got := string(img[off : off+rec.PayloadLen]); got != "hello" {
				t.Errorf("payload at offset %d is %q, want hello", off, got)
			}
			return
		}
	}
}

func TestTypedDecode(t *testing.T) {
	r, err := NewReader(bytes.NewReader(buildImage(t)))
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == TypeFd {
			var fd Fd
			if err := rec.Decode(&fd); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Fd{Pid: 42, Fd: 3, File: 3}, fd); diff != "" {
				t.Errorf("fd (-want +got):\n%s", diff)
			}
		}
	}
}

// Every truncation must be an error that names an offset and a record.
func TestTruncated(t *testing.T) {
	img := buildImage(t)
	for n := 0; n < len(img); n++ {
		_, err := readAll(t, img[:n])
		if err == nil {
			t.Fatalf("truncated at %d of %d: no error", n, len(img))
		}
		if n == 0 {
			if !errors.Is(err, ErrNotImage) {
				t.Errorf("empty image: %v, want ErrNotImage", err)
			}
			continue
		}
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("truncated at %d: %v is not a CorruptError", n, err)
		}
		if !strings.Contains(err.Error(), "offset") {
			t.Errorf("truncated at %d: %q does not name an offset", n, err)
		}
	}
}

// Every flipped byte must be detected: by magic, version, checksum or
// structure, never silently and never by panicking.
func TestFlippedByte(t *testing.T) {
	img := buildImage(t)
	for i := range img {
		if i == 10 || i == 11 {
			continue // the minor version: a newer minor is readable by design
		}
		bad := bytes.Clone(img)
		bad[i] ^= 0x40
		_, err := readAll(t, bad)
		if err == nil {
			t.Fatalf("byte %d flipped: no error", i)
		}
		if i >= preambleSize {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("byte %d flipped: %v is not a CorruptError", i, err)
			}
			if ce.Record < 0 || !strings.Contains(err.Error(), "record") {
				t.Errorf("byte %d flipped: %q does not name the record", i, err)
			}
		}
	}
}

func TestFlippedByteNamesRecord(t *testing.T) {
	img := buildImage(t)
	// Locate the pipe record's payload ("hello") and flip a byte there.
	i := bytes.Index(img, []byte("hello"))
	bad := bytes.Clone(img)
	bad[i+1] ^= 1
	_, err := readAll(t, bad)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want CorruptError", err)
	}
	if ce.Record != 3 || ce.Type != TypePipe {
		t.Errorf("error names record %d (%s), want 3 (pipe): %v", ce.Record, ce.Type, err)
	}
}

func TestVersion(t *testing.T) {
	img := buildImage(t)
	newer := bytes.Clone(img)
	binary.LittleEndian.PutUint16(newer[8:], MajorVersion+1)
	if _, err := readAll(t, newer); !errors.Is(err, ErrVersion) {
		t.Errorf("newer major: %v, want ErrVersion", err)
	}
	minor := bytes.Clone(img)
	binary.LittleEndian.PutUint16(minor[10:], MinorVersion+3)
	if _, err := readAll(t, minor); err != nil {
		t.Errorf("newer minor: %v, want it read", err)
	}
}

// A forged length must not make the reader allocate it.
func TestForgedLengths(t *testing.T) {
	img := buildImage(t)
	first := preambleSize // the header record
	for _, tc := range []struct {
		name string
		off  int
		val  uint64
		size int
	}{
		{"meta 4 GiB", first + 20, 0xffffffff, 4},
		{"meta just above limit", first + 20, MaxMetaSize + 1, 4},
		{"deps", first + 16, 0xffffffff, 4},
		{"payload 2^40", first + 24, 1 << 40, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(img)
			if tc.size == 4 {
				binary.LittleEndian.PutUint32(bad[tc.off:], uint32(tc.val))
			} else {
				binary.LittleEndian.PutUint64(bad[tc.off:], tc.val)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := readAll(t, bad); err == nil {
				t.Fatal("no error")
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
				t.Errorf("reading allocated %d bytes", grew)
			}
		})
	}
}

func TestWriterRefusesForwardReference(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(TypeFd, 0, []Objref{9}, &Fd{}); err == nil {
		t.Error("dependency on an undefined objref accepted")
	}
	if err := w.WriteWithPayload(TypePipe, w.NewObjref(), nil, &Pipe{}, 4, func(pw io.Writer) error {
		_, err := pw.Write([]byte("ab"))
		return err
	}); err == nil {
		t.Error("short payload accepted")
	}
}

// A payload whose source fails midway must not hide the error record that
// follows it.
func TestAbortAfterFailedPayload(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	err = w.WriteWithPayload(TypePipe, w.NewObjref(), nil, &Pipe{}, 100, func(pw io.Writer) error {
		pw.Write([]byte("partial"))
		return errors.New("source vanished")
	})
	if err == nil {
		t.Fatal("a failed payload source was not reported")
	}
	if err := w.Abort(err); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, buf.Bytes())
	if err == nil || !strings.Contains(err.Error(), "source vanished") {
		t.Errorf("reader reports %v, want the recorded failure", err)
	}
}

func TestVersionBeforeReserved(t *testing.T) {
	img := buildImage(t)
	future := bytes.Clone(img)
	binary.LittleEndian.PutUint16(future[8:], MajorVersion+1)
	binary.LittleEndian.PutUint32(future[12:], 0xdead)
	if _, err := readAll(t, future); !errors.Is(err, ErrVersion) {
		t.Errorf("future major version with reserved bytes used: %v, want ErrVersion", err)
	}
}

func TestErrorRecord(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(errors.New("target vanished")); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, buf.Bytes())
	if err == nil || !strings.Contains(err.Error(), "target vanished") {
		t.Errorf("got %v, want the recorded failure", err)
	}
}

// Copying every record yields the same bytes: the basis of a filter that
// changes nothing.
func TestCopyIsIdentity(t *testing.T) {
	img := buildImage(t)
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := NewWriter(&out, r.Header())
	if err != nil {
		t.Fatal(err)
	}
	_ = w
	// The header is re-encoded from its decoded form; compare from the first
	// record after it by copying raw records.
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.CopyRecord(rec, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img, out.Bytes()) {
		t.Errorf("copy differs: %d bytes in, %d out", len(img), out.Len())
	}
}

func FuzzReader(f *testing.F) {
	img := buildImage(f)
	f.Add(img)
	f.Add(img[:len(img)/2])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			rec, err := r.Next()
			if err != nil {
				return
			}
			var m map[string]any
			_ = rec.Decode(&m)
			if _, err := rec.PayloadBytes(1 << 20); err != nil {
				return
			}
		}
	})
}

func TestSetsidAfterFork(t *testing.T) {
	// session00's tree in a pid namespace: 1 is the init, 2 the test.
	tree := Tree{Processes: []TreeProcess{
		{Pid: 1, Sid: 1, NsPid: 1},
		{Pid: 2, Ppid: 1, Sid: 2, NsPid: 2},
		{Pid: 3, Ppid: 1, Sid: 2, NsPid: 3},     // orphan, given to the init
		{Pid: 4, Ppid: 2, Sid: 4, NsPid: 4},     // its own session
		{Pid: 5, Ppid: 4, Sid: 2, NsPid: 5},     // born before 4's setsid
		{Pid: 6, Ppid: 2, Sid: 6, NsPid: 6},     // setsid after forking 7
		{Pid: 7, Ppid: 6, Sid: 7, NsPid: 7},     // setsid after forking 8
		{Pid: 8, Ppid: 7, Sid: 2, NsPid: 8},     // born in 2, twice removed
		{Pid: 9, Ppid: 2, Sid: 9, NsPid: 9},     // its own session,
		{Pid: 10, Ppid: 9, Sid: 9, NsPid: 10},   // its children in it
		{Pid: 11, Ppid: 10, Sid: 12, NsPid: 11}, // no ancestor in its session
	}}
	want := map[int]bool{4: true, 6: true, 7: true}
	if diff := cmp.Diff(want, tree.SetsidAfterFork()); diff != "" {
		t.Errorf("SetsidAfterFork (-want +got):\n%s", diff)
	}
}

// An image followed by more of the stream is corrupt, unless the reader is
// told the stream goes on (StopAtTrailer), when it ends at the trailer
// without reading further: on a socket that stays open, a read past it
// would wait for good.
func TestStopAtTrailer(t *testing.T) {
	img := buildImage(t)
	if _, err := readAll(t, append(slices.Clip(img), 'x')); err == nil || !strings.Contains(err.Error(), "data after the trailer") {
		t.Errorf("an image followed by a byte: %v, want data after the trailer", err)
	}
	pr, pw := io.Pipe()
	go pw.Write(img) // and never closed: the stream goes on
	r, err := NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	r.StopAtTrailer()
	done := make(chan error, 1)
	go func() {
		for {
			_, err := r.Next()
			if err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("StopAtTrailer: Next = %v, want io.EOF at the trailer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StopAtTrailer: Next waits past the trailer")
	}
}

package ckpt

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// byteRecord puts strings where records hold them: fields, nested structs
// and pointers, slices, map keys and values.
type byteRecord struct {
	File    File
	Proc    *Process
	Names   []string
	Extra   map[string]string
	private string
}

func newByteRecord(a, b string) byteRecord {
	return byteRecord{
		File:  File{Kind: FileRegular, Path: a},
		Proc:  &Process{Comm: b, Cwd: a + "/" + b, Root: "/"},
		Names: []string{a, "plain", b},
		Extra: map[string]string{a: b, "k": a},
	}
}

// roundTrip writes rec as a record's metadata and decodes it back.
func roundTrip(t *testing.T, rec any, into any) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Arch: "amd64", PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(TypeFile, 1, nil, rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Decode(into); err != nil {
		t.Fatal(err)
	}
}

// A path or name that is not UTF-8 comes back byte for byte (encoding/json
// alone would give U+FFFD), and the writer's value is left as it was.
func TestByteStringsKept(t *testing.T) {
	tests := []struct{ name, a, b string }{
		{"text", "/var/log/app.log", "nginx"},
		{"latin-1 path", "/srv/caf\xe9/log", "caf\xe9"},
		{"lone continuation bytes", "\x80\x81", "\xbf"},
		{"leading NUL", "\x00abc", "\x00"},
		{"looks escaped", "\x00AAAA", "\x00!!"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newByteRecord(tt.a, tt.b)
			before := newByteRecord(tt.a, tt.b)
			var got byteRecord
			roundTrip(t, rec, &got)
			if diff := cmp.Diff(before, rec, cmp.AllowUnexported(byteRecord{})); diff != "" {
				t.Errorf("the written value changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(before, got, cmp.AllowUnexported(byteRecord{})); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzByteStrings(f *testing.F) {
	f.Add("/tmp/a", "b")
	f.Add("caf\xe9", "\x00\xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		rec := newByteRecord(a, b)
		var got byteRecord
		roundTrip(t, rec, &got)
		if diff := cmp.Diff(newByteRecord(a, b), got, cmp.AllowUnexported(byteRecord{})); diff != "" {
			t.Errorf("read back (-want +got):\n%s", diff)
		}
	})
}

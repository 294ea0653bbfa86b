package sys

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func writeAll(t *testing.T, w *FD, chunks [][]byte) {
	t.Helper()
	for _, c := range chunks {
		if n, err := unix.Write(w.Int(), c); err != nil || n != len(c) {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
}

func TestPeekPipe(t *testing.T) {
	tests := []struct {
		name     string
		flags    int // pipe2 flags
		size     int // F_SETPIPE_SZ, 0 to keep the default
		chunks   [][]byte
		wantSize int
	}{
		{"empty", 0, 0, nil, 0},
		{"small", 0, 0, [][]byte{[]byte("hello")}, 5},
		{"100 KiB in a 1 MiB pipe", 0, 1 << 20, [][]byte{pattern(100 << 10)}, 100 << 10},
		// Packet-mode pipes keep every write in its own slot, so a private
		// pipe with the default 16 slots would see only the first 16 writes.
		// 200 packets need 200 of the 256 slots of a 1 MiB pipe.
		{"200 packets in a 1 MiB O_DIRECT pipe", unix.O_DIRECT, 1 << 20, split(pattern(2000), 10), 2000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w := newPipe(t, tc.flags|unix.O_NONBLOCK)
			if tc.size != 0 {
				if got, err := SetPipeSize(w, tc.size); err != nil || got != tc.size {
					t.Fatalf("SetPipeSize = %d, %v", got, err)
				}
			}
			writeAll(t, w, tc.chunks)
			want := bytes.Join(tc.chunks, nil)

			got, err := PeekPipe(r, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" || len(got) != tc.wantSize {
				t.Fatalf("peeked %d bytes, want %d; diff:\n%.2000s", len(got), tc.wantSize, diff)
			}
			// The source must be untouched: same count, same bytes.
			if n, err := FionRead(r); err != nil || n != len(want) {
				t.Fatalf("FIONREAD after peek = %d, %v; want %d", n, err, len(want))
			}
			again := make([]byte, len(want)+1)
			n := 0
			for n < len(want) {
				m, err := unix.Read(r.Int(), again[n:])
				if err != nil {
					t.Fatalf("read back after %d bytes: %v", n, err)
				}
				n += m
			}
			if !bytes.Equal(again[:n], want) {
				t.Error("source pipe contents changed by peek")
			}
		})
	}
}

func TestPeekPipeLimit(t *testing.T) {
	r, w := newPipe(t, unix.O_NONBLOCK)
	writeAll(t, w, [][]byte{[]byte("0123456789")})
	if _, err := PeekPipe(r, 9); err == nil {
		t.Error("PeekPipe with max below the queued size succeeded")
	}
	if n, _ := FionRead(r); n != 10 {
		t.Errorf("FIONREAD = %d after refused peek, want 10", n)
	}
}

func TestPeekPipeNotPipe(t *testing.T) {
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	fd := NewFD(int(f.Fd()))
	_, err = PeekPipe(fd, 1<<20)
	if err == nil {
		t.Error("PeekPipe on a regular file succeeded")
	}
	f.Close()
}

func TestPipeSize(t *testing.T) {
	r, w := newPipe(t, 0)
	if n, err := PipeSize(r); err != nil || n != 65536 {
		t.Errorf("default PipeSize = %d, %v", n, err)
	}
	if n, err := SetPipeSize(w, 100_000); err != nil || n != 131072 {
		t.Errorf("SetPipeSize(100000) = %d, %v; want 131072 (rounded to a power of two)", n, err)
	}
	if n, err := PipeSize(r); err != nil || n != 131072 {
		t.Errorf("PipeSize after set = %d, %v", n, err)
	}
}

func TestTeeSplice(t *testing.T) {
	r1, w1 := newPipe(t, unix.O_NONBLOCK)
	r2, w2 := newPipe(t, unix.O_NONBLOCK)
	writeAll(t, w1, [][]byte{[]byte("abcdef")})
	if n, err := Tee(r1, w2, 4, 0); err != nil || n != 4 {
		t.Fatalf("Tee = %d, %v", n, err)
	}
	if n, _ := FionRead(r1); n != 6 {
		t.Errorf("tee consumed input: %d left", n)
	}
	f, err := os.CreateTemp(t.TempDir(), "splice")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := NewFD(int(f.Fd()))
	var off int64
	if n, err := Splice(r2, nil, out, &off, 4, 0); err != nil || n != 4 {
		t.Fatalf("Splice = %d, %v", n, err)
	}
	cp, err := os.CreateTemp(t.TempDir(), "copy")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var inOff, outOff int64
	if n, err := CopyFileRange(out, &inOff, NewFD(int(cp.Fd())), &outOff, 100); err != nil || n != 4 {
		t.Fatalf("CopyFileRange = %d, %v", n, err)
	}
	got, _ := os.ReadFile(cp.Name())
	if string(got) != "abcd" {
		t.Errorf("copied %q, want %q", got, "abcd")
	}
}

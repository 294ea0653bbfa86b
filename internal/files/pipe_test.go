package files

import (
	"bytes"
	"io"
	"testing"

	"golang.org/x/sys/unix"
)

// chunkReader returns at most n bytes per Read, as an image payload may.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// A pipe refilled to its size takes every byte, however the payload is cut.
func TestRefillPipeToItsSize(t *testing.T) {
	const size = 1 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, chunk := range []int{3000, 4096, 5000, 65536, size} {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		got, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size)
		if err != nil || got != size {
			unix.Close(p[0])
			unix.Close(p[1])
			t.Skipf("F_SETPIPE_SZ %d: %d, %v", size, got, err)
		}
		w := fdWriter(p[1])
		err = refillPipe(w, chunkReader{bytes.NewReader(data), chunk})
		if err != nil {
			t.Errorf("chunks of %d bytes: %v", chunk, err)
		} else if n, _ := unix.IoctlGetInt(p[0], unix.TIOCINQ); n != size {
			t.Errorf("chunks of %d bytes: %d bytes in the pipe, want %d", chunk, n, size)
		}
		unix.Close(p[0])
		unix.Close(p[1])
	}
}

// fdWriter writes to a non-blocking fd without waiting: a full pipe fails
// the write (EAGAIN) rather than hanging the test.
type fdWriter int

func (f fdWriter) Write(b []byte) (int, error) { return unix.Write(int(f), b) }

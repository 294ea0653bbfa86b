package sys

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// split cuts b into pieces of the given sizes, cycling through them.
func split(b []byte, sizes ...int) [][]byte {
	var out [][]byte
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func remoteOf(b []byte, sizes ...int) []unix.RemoteIovec {
	var out []unix.RemoteIovec
	for _, p := range split(b, sizes...) {
		out = append(out, unix.RemoteIovec{Base: uintptr(unsafe.Pointer(&p[0])), Len: len(p)})
	}
	return out
}

func TestProcessVMReadvBatching(t *testing.T) {
	src := make([]byte, 300_000)
	for i := range src {
		src[i] = byte(i * 7)
	}
	pid := os.Getpid()
	tests := []struct {
		name        string
		localSizes  []int
		remoteSizes []int
	}{
		{"one to one", []int{len(src)}, []int{len(src)}},
		{"many local, one remote", []int{97}, []int{len(src)}},         // ~3100 local iovecs
		{"one local, many remote", []int{len(src)}, []int{13, 200, 1}}, // ~4300 remote iovecs
		{"mismatched", []int{5, 0, 4096, 33}, []int{77, 1, 9000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, len(src))
			var local [][]byte
			for _, p := range split(dst, tc.localSizes...) {
				local = append(local, p, nil) // empty entries must not confuse the cursor
			}
			n, err := ProcessVMReadv(pid, local, remoteOf(src, tc.remoteSizes...))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(src) {
				t.Errorf("n = %d, want %d", n, len(src))
			}
			if !bytes.Equal(dst, src) {
				t.Error("copied bytes differ")
			}
		})
	}
}

func TestProcessVMWritev(t *testing.T) {
	dst := make([]byte, 10_000)
	src := bytes.Repeat([]byte("crsub"), 2000)
	n, err := ProcessVMWritev(os.Getpid(), split(src, 3), remoteOf(dst, 5000, 1, 4999))
	if err != nil || n != len(src) {
		t.Fatalf("ProcessVMWritev = %d, %v", n, err)
	}
	if diff := cmp.Diff(src, dst); diff != "" {
		t.Errorf("written bytes differ (-want +got):\n%s", diff)
	}
}

func TestProcessVMReadvPartial(t *testing.T) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 3*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for i := range mem {
		mem[i] = 0xaa
	}
	// A hole in the middle: the kernel stops there and the wrapper must
	// report how far it got.
	if err := unix.Mprotect(mem[ps:2*ps], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	dst := make([]byte, 3*ps)
	n, err := ProcessVMReadv(os.Getpid(), [][]byte{dst}, []unix.RemoteIovec{{Base: base + 100, Len: 2*ps - 100}, {Base: base + 2*uintptr(ps), Len: ps}})
	if !errors.Is(err, unix.EFAULT) {
		t.Errorf("err = %v, want EFAULT", err)
	}
	if want := ps - 100; n != want {
		t.Errorf("n = %d, want %d", n, want)
	}

	if _, err := ProcessVMReadv(os.Getpid(), [][]byte{dst}, []unix.RemoteIovec{{Base: base, Len: -1}}); err == nil {
		t.Error("negative remote length accepted")
	}
	if n, err := ProcessVMReadv(os.Getpid(), nil, []unix.RemoteIovec{{Base: base, Len: 10}}); n != 0 || err != nil {
		t.Errorf("empty local = %d, %v", n, err)
	}
}

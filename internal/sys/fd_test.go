package sys

import (
	"errors"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func newPipe(t *testing.T, flags int) (r, w *FD) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|flags); err != nil {
		t.Fatal(err)
	}
	r, w = NewFD(p[0]), NewFD(p[1])
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestFDCloseIdempotent(t *testing.T) {
	r, _ := newPipe(t, 0)
	n := r.Int()
	if err := r.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := r.Int(); got != -1 {
		t.Errorf("Int after Close = %d, want -1", got)
	}
	if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd %d still open after Close: %v", n, err)
	}
	var nilFD *FD
	if err := nilFD.Close(); err != nil || nilFD.Int() != -1 {
		t.Errorf("nil FD: Close=%v Int=%d", err, nilFD.Int())
	}
	if NewFD(-5).Int() != -1 {
		t.Error("NewFD(-5).Int() != -1")
	}
}

func TestFDDup(t *testing.T) {
	r, w := newPipe(t, 0)
	d, err := w.Dup()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Int() == w.Int() {
		t.Fatal("Dup returned the same number")
	}
	flags, err := unix.FcntlInt(uintptr(d.Int()), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("dup flags = %#x, %v; want FD_CLOEXEC", flags, err)
	}
	if _, err := unix.Write(d.Int(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, err := unix.Read(r.Int(), buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Errorf("read through original = %d %v %q", n, err, buf)
	}

	closed := NewFD(-1)
	if _, err := closed.Dup(); !errors.Is(err, unix.EBADF) {
		t.Errorf("Dup of closed FD: %v, want EBADF", err)
	}
}

func TestFDFile(t *testing.T) {
	r, w := newPipe(t, 0)
	f := w.File("pipe-w")
	if f == nil {
		t.Fatal("File returned nil")
	}
	if w.Int() != -1 {
		t.Errorf("FD still owns %d after File", w.Int())
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after File: %v", err)
	}
	if w.File("again") != nil {
		t.Error("second File returned non-nil")
	}
	if _, err := f.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := io.ReadAll(r.File("pipe-r"))
	if err != nil || string(got) != "hi" {
		t.Errorf("read %q, %v", got, err)
	}
}

func TestSyscallErrorType(t *testing.T) {
	_, err := PidfdOpen(-1)
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "pidfd_open" || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("PidfdOpen(-1) = %v, want an *os.SyscallError wrapping EINVAL", err)
	}
}

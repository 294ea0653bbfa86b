package sys

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPidfdGetfd(t *testing.T) {
	pfd, err := PidfdOpen(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pfd.Close()

	r, w := newPipe(t, 0)
	got, err := PidfdGetfd(pfd, w.Int())
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	flags, _ := unix.FcntlInt(uintptr(got.Int()), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("stolen fd lacks FD_CLOEXEC")
	}
	if _, err := unix.Write(got.Int(), []byte("z")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, _ := unix.Read(r.Int(), buf); n != 1 || buf[0] != 'z' {
		t.Errorf("stolen fd is not the same pipe: read %q", buf[:n])
	}

	// Kcmp agrees the copy is the same open file.
	res, err := Kcmp(os.Getpid(), os.Getpid(), KcmpFile, uintptr(w.Int()), uintptr(got.Int()))
	if err != nil {
		t.Fatal(err)
	}
	if res != KcmpEqual {
		t.Errorf("kcmp(KCMP_FILE) = %d, want %d", res, KcmpEqual)
	}
	if res, _ := Kcmp(os.Getpid(), os.Getpid(), KcmpFile, uintptr(r.Int()), uintptr(got.Int())); res == KcmpEqual {
		t.Error("kcmp says read and write ends are the same file")
	}

	if _, err := PidfdGetfd(pfd, 99999); !errors.Is(err, unix.EBADF) {
		t.Errorf("PidfdGetfd(bad fd) = %v, want EBADF", err)
	}
}

func TestKcmpEpoll(t *testing.T) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	epfd := NewFD(ep)
	defer epfd.Close()
	r, w := newPipe(t, 0)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, r.Int(), &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	slot := KcmpEpollSlot{Efd: uint32(ep), Tfd: uint32(r.Int())}
	tests := []struct {
		name string
		fd   int
		want int
	}{
		{"registered file", r.Int(), KcmpEqual},
		{"other file", w.Int(), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KcmpEpoll(pid, pid, tc.fd, slot)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == KcmpEqual && got != KcmpEqual || tc.want != KcmpEqual && got == KcmpEqual {
				t.Errorf("KcmpEpoll = %d, want equal=%v", got, tc.want == KcmpEqual)
			}
		})
	}
	if _, err := KcmpEpoll(pid, pid, r.Int(), KcmpEpollSlot{Efd: uint32(ep), Tfd: 9999}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("KcmpEpoll(unregistered tfd) = %v, want ENOENT", err)
	}
}

func TestPrlimit(t *testing.T) {
	cur, err := Prlimit(os.Getpid(), unix.RLIMIT_NOFILE, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		t.Fatal(err)
	}
	if cur != want {
		t.Errorf("Prlimit = %+v, getrlimit = %+v", cur, want)
	}
	if _, err := Prlimit(-5, unix.RLIMIT_NOFILE, nil); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Prlimit(bad pid) = %v, want ESRCH", err)
	}
}

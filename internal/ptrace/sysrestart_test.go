package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestKeepWaiting(t *testing.T) {
	neg := func(n int64) uint64 { return uint64(-n) }
	for _, tc := range []struct {
		name    string
		regs    Regs
		changed bool
		rax     uint64
	}{
		{"epoll_wait ended with EINTR", Regs{Orig_rax: unix.SYS_EPOLL_WAIT, Rax: neg(int64(unix.EINTR))}, true, neg(ErrRestartNoHand)},
		{"semtimedop ended with EINTR", Regs{Orig_rax: unix.SYS_SEMTIMEDOP, Rax: neg(int64(unix.EINTR))}, true, neg(ErrRestartNoHand)},
		{"epoll_wait that returned events", Regs{Orig_rax: unix.SYS_EPOLL_WAIT, Rax: 1}, false, 1},
		{"read ended with EINTR", Regs{Orig_rax: unix.SYS_READ, Rax: neg(int64(unix.EINTR))}, false, neg(int64(unix.EINTR))},
		{"read to be restarted", Regs{Orig_rax: unix.SYS_READ, Rax: neg(ErrRestartSys)}, false, neg(ErrRestartSys)},
		{"not in a call", Regs{Orig_rax: ^uint64(0), Rax: neg(int64(unix.EINTR))}, false, neg(int64(unix.EINTR))},
	} {
		r := tc.regs
		if got := KeepWaiting(&r); got != tc.changed || r.Rax != tc.rax || r.Orig_rax != tc.regs.Orig_rax {
			t.Errorf("%s: changed %v, rax %#x, orig_rax %#x; want %v, %#x, %#x", tc.name, got, r.Rax, r.Orig_rax, tc.changed, tc.rax, tc.regs.Orig_rax)
		}
	}
}

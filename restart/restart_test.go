package restart

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/ptrace"
)

func neg(e int64) uint64 { return uint64(-e) }

func TestRestartSyscall(t *testing.T) {
	const rip = 0x401000
	base := ptrace.Regs{Rip: rip, Rax: neg(ptrace.ErrRestartSys), Orig_rax: 0, Rdi: 3, Rsi: 0x7000, Rdx: 0x7100, R10: 0x7200}
	type want struct{ Rax, Rip, Orig, Rdi, Rsi, Rdx uint64 }
	for _, tc := range []struct {
		name string
		sc   *ckpt.InterruptedSyscall
		want want
	}{
		{"not in a syscall", nil, want{neg(ptrace.ErrRestartSys), rip, 0, 3, 0x7000, 0x7100}},
		{"read: ERESTARTSYS left to the kernel", &ckpt.InterruptedSyscall{Nr: unix.SYS_READ, Ret: -ptrace.ErrRestartSys, Args: [6]uint64{3, 0x7000, 10}},
			want{neg(ptrace.ErrRestartSys), rip, unix.SYS_READ, 3, 0x7000, 0x7100}},
		{"pause: ERESTARTNOHAND left to the kernel", &ckpt.InterruptedSyscall{Nr: unix.SYS_PAUSE, Ret: -ptrace.ErrRestartNoHand},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_PAUSE, 3, 0x7000, 0x7100}},
		{"nanosleep with rem sleeps what is left", &ckpt.InterruptedSyscall{Nr: unix.SYS_NANOSLEEP, Ret: -ptrace.ErrRestartRestartBlock, Args: [6]uint64{0x7000, 0x7010}},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_NANOSLEEP, 0x7010, 0x7010, 0x7100}},
		{"nanosleep without rem: EINTR", &ckpt.InterruptedSyscall{Nr: unix.SYS_NANOSLEEP, Ret: -ptrace.ErrRestartRestartBlock, Args: [6]uint64{0x7000, 0}},
			want{neg(int64(unix.EINTR)), rip, ^uint64(0), 3, 0x7000, 0x7100}},
		{"clock_nanosleep relative with rem", &ckpt.InterruptedSyscall{Nr: unix.SYS_CLOCK_NANOSLEEP, Ret: -ptrace.ErrRestartRestartBlock, Args: [6]uint64{1, 0, 0x7100, 0x7200}},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_CLOCK_NANOSLEEP, 3, 0x7000, 0x7200}},
		{"clock_nanosleep absolute reruns as is", &ckpt.InterruptedSyscall{Nr: unix.SYS_CLOCK_NANOSLEEP, Ret: -ptrace.ErrRestartRestartBlock, Args: [6]uint64{1, unix.TIMER_ABSTIME, 0x7100, 0}},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_CLOCK_NANOSLEEP, 3, 0x7000, 0x7100}},
		{"poll restart block reruns with its timeout", &ckpt.InterruptedSyscall{Nr: unix.SYS_POLL, Ret: -ptrace.ErrRestartRestartBlock},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_POLL, 3, 0x7000, 0x7100}},
		{"futex restart block: EINTR", &ckpt.InterruptedSyscall{Nr: unix.SYS_FUTEX, Ret: -ptrace.ErrRestartRestartBlock},
			want{neg(int64(unix.EINTR)), rip, ^uint64(0), 3, 0x7000, 0x7100}},
		{"epoll_wait ended by the freeze runs again", &ckpt.InterruptedSyscall{Nr: unix.SYS_EPOLL_WAIT, Ret: -int64(unix.EINTR), Args: [6]uint64{3, 0x7000, 1, ^uint64(0)}},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_EPOLL_WAIT, 3, 0x7000, 0x7100}},
		{"semop ended by the freeze runs again", &ckpt.InterruptedSyscall{Nr: unix.SYS_SEMOP, Ret: -int64(unix.EINTR)},
			want{neg(ptrace.ErrRestartNoHand), rip, unix.SYS_SEMOP, 3, 0x7000, 0x7100}},
		{"another call's EINTR stands", &ckpt.InterruptedSyscall{Nr: unix.SYS_READ, Ret: -int64(unix.EINTR)},
			want{neg(ptrace.ErrRestartSys), rip, ^uint64(0), 3, 0x7000, 0x7100}},
		{"completed call is left alone", &ckpt.InterruptedSyscall{Nr: unix.SYS_GETPID, Ret: 42},
			want{neg(ptrace.ErrRestartSys), rip, ^uint64(0), 3, 0x7000, 0x7100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			restartSyscall(&r, tc.sc)
			got := want{r.Rax, r.Rip, r.Orig_rax, r.Rdi, r.Rsi, r.Rdx}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("registers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindFree(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		size uint64
		busy []span
		want uint64
	}{
		{"empty", 0x1000, nil, 16 * mib},
		{"skips an overlap", 0x1000, []span{{16 * mib, 17 * mib}}, 17 * mib},
		{"fits a gap", 0x2000, []span{{16 * mib, 17 * mib}, {17*mib + 0x2000, 20 * mib}}, 17 * mib},
		{"gap too small", 0x3000, []span{{16 * mib, 17 * mib}, {17*mib + 0x2000, 20 * mib}}, 20 * mib},
		{"unsorted and overlapping", 0x1000, []span{{18 * mib, 19 * mib}, {16 * mib, 18*mib + 0x1000}}, 19 * mib},
		{"below the floor ignored", 0x1000, []span{{0x400000, 0x500000}}, 16 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findFree(tc.size, tc.busy)
			if err != nil || got != tc.want {
				t.Errorf("findFree = %#x, %v; want %#x", got, err, tc.want)
			}
		})
	}
}

func TestWordsToRegs(t *testing.T) {
	words := make([]uint64, 27)
	for i := range words {
		words[i] = uint64(i + 1)
	}
	r := wordsToRegs(words)
	if r.R15 != 1 || r.Orig_rax != 16 || r.Rip != 17 || r.Fs_base != 22 || r.Gs != 27 {
		t.Errorf("word order wrong: %+v", r)
	}
}

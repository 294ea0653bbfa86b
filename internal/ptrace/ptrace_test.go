package ptrace

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/ptrace/ptracetest"
)

// sigProgram blocks SIGHUP and SIGUSR2, handles SIGUSR1 by printing "usr1",
// and with the argument "queue" queues a blocked SIGUSR2 (value 42) on the
// process and a blocked SIGHUP on its thread. It prints the address of its
// SIGUSR1 handler, then waits in pause().
const sigProgram = `
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; write(1, "usr1\n", 5); }

int main(int argc, char **argv) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (argc > 1 && strcmp(argv[1], "queue") == 0) {
		union sigval v = {.sival_int = 42};
		sigqueue(getpid(), SIGUSR2, v);
		raise(SIGHUP);
	}
	printf("%p\n", (void *)on_usr1);
	fflush(stdout);
	for (;;)
		pause();
}
`

// startSigProgram runs sigProgram and returns it once it printed its handler
// address, together with that address and its stdout for later lines.
func startSigProgram(t *testing.T, args ...string) (*exec.Cmd, uint64, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(ptracetest.BuildC(t, sigProgram), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ptracetest.Start(t, cmd)
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read handler address: %v", err)
	}
	handler, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(line), "0x"), 16, 64)
	if err != nil {
		t.Fatalf("parse handler address %q: %v", line, err)
	}
	ptracetest.WaitBlockedIn(t, cmd.Process.Pid, unix.SYS_PAUSE)
	return cmd, handler, out
}

func startSleep(t *testing.T) int {
	t.Helper()
	cmd := ptracetest.Start(t, exec.Command("sleep", "100"))
	ptracetest.WaitBlockedIn(t, cmd.Process.Pid, unix.SYS_CLOCK_NANOSLEEP)
	return cmd.Process.Pid
}

func seize(t *testing.T, pid int, opts ...Option) *Tracee {
	t.Helper()
	tr, err := Seize(pid, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestSeizeSleepingProcess(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t)
	tr := seize(t, pid)
	if got, err := ptracetest.State(pid); err != nil || got != "t" {
		t.Errorf("state after Seize = %q, %v; want t (tracing stop)", got, err)
	}
	if sig := tr.GroupStopSignal(); sig != 0 {
		t.Errorf("GroupStopSignal() = %d, want 0", sig)
	}

	regs, err := tr.Regs()
	if err != nil {
		t.Fatal(err)
	}
	// The interrupt caught sleep inside clock_nanosleep, which the kernel
	// prepares to restart through restart_syscall.
	const erestartRestartblock = -516
	if int64(regs.Orig_rax) != unix.SYS_CLOCK_NANOSLEEP || int64(regs.Rax) != erestartRestartblock {
		t.Errorf("orig_rax, rax = %d, %d; want %d, %d", int64(regs.Orig_rax), int64(regs.Rax), unix.SYS_CLOCK_NANOSLEEP, erestartRestartblock)
	}
	if regs.Fs_base == 0 {
		t.Error("fs_base = 0, want the TLS address glibc set")
	}

	info, err := tr.SyscallInfo()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SyscallInfo{Op: SyscallNone, Arch: unix.AUDIT_ARCH_X86_64, InstructionPointer: regs.Rip, StackPointer: regs.Rsp}, info); diff != "" {
		t.Errorf("SyscallInfo() at the interrupt stop (-want +got):\n%s", diff)
	}

	rseq, err := tr.Rseq()
	if err != nil {
		t.Fatal(err)
	}
	// glibc registers a 32-byte area with its fixed signature.
	if rseq.Address == 0 || rseq.Size != 32 || rseq.Signature != 0x53053053 {
		t.Errorf("Rseq() = %+v, want a glibc registration", rseq)
	}

	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_RESTART_SYSCALL)
}

// Subtests would run on other OS threads than the tracer, so each round
// trip seizes its own process.

func TestXStateRoundTrip(t *testing.T) {
	ptracetest.LockThread(t)
	tr := seize(t, startSleep(t))
	defer tr.Detach()
	before, err := tr.XState()
	if err != nil {
		t.Fatal(err)
	}
	layout, err := ParseXStateLayout(before)
	if err != nil {
		t.Fatal(err)
	}
	const x87AndSSE = 0x3
	if layout.XCR0&x87AndSSE != x87AndSSE || layout.Size != len(before) || layout.Size <= 576 {
		t.Errorf("ParseXStateLayout() = %+v for a %d-byte buffer", layout, len(before))
	}
	t.Logf("xstate: %d bytes, XCR0 %#x", layout.Size, layout.XCR0)
	if err := tr.SetXState(before); err != nil {
		t.Fatal(err)
	}
	after, err := tr.XState()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("xstate changed by a round trip (-before +after):\n%s", diff)
	}
	if err := tr.SetXState(before[:len(before)-8]); err == nil {
		t.Error("SetXState accepted a truncated buffer")
	}
}

func TestRegsRoundTrip(t *testing.T) {
	ptracetest.LockThread(t)
	tr := seize(t, startSleep(t))
	defer tr.Detach()
	before, err := tr.Regs()
	if err != nil {
		t.Fatal(err)
	}
	changed := before
	changed.R12 ^= 0x5a5a
	if err := tr.SetRegs(changed); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(changed, got); diff != "" {
		t.Errorf("registers after SetRegs (-want +got):\n%s", diff)
	}
	if err := tr.SetRegs(before); err != nil {
		t.Fatal(err)
	}
}

func TestSigMaskRoundTrip(t *testing.T) {
	ptracetest.LockThread(t)
	tr := seize(t, startSleep(t))
	defer tr.Detach()
	before, err := tr.SigMask()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  uint64
		want uint64
	}{
		{"one more signal", before | 1<<(unix.SIGUSR2-1), before | 1<<(unix.SIGUSR2-1)},
		{"KILL and STOP stay unblocked", ^uint64(0), ^uint64(0) &^ (1<<(unix.SIGKILL-1) | 1<<(unix.SIGSTOP-1))},
		{"original", before, before},
	}
	for _, tt := range tests {
		if err := tr.SetSigMask(tt.set); err != nil {
			t.Fatal(err)
		}
		got, err := tr.SigMask()
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s: SigMask() = %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

func TestPendingSignals(t *testing.T) {
	ptracetest.LockThread(t)
	cmd, _, _ := startSigProgram(t, "queue")
	pid := cmd.Process.Pid
	tr := seize(t, pid)
	defer tr.Detach()

	// si_code values from the kernel's uapi siginfo.h.
	const (
		siQueue = -1
		siTkill = -6
	)
	type signal struct{ Signo, Code, Pid int }
	summarize := func(infos []Siginfo) []signal {
		var out []signal
		for i := range infos {
			out = append(out, signal{infos[i].Signo(), infos[i].Code(), infos[i].Pid()})
		}
		return out
	}
	tests := []struct {
		name   string
		shared bool
		want   []signal
	}{
		{"thread queue", false, []signal{{int(unix.SIGHUP), siTkill, pid}}},
		{"process queue", true, []signal{{int(unix.SIGUSR2), siQueue, pid}}},
	}
	for _, tt := range tests {
		got, err := tr.PendingSignals(tt.shared)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, summarize(got)); diff != "" {
			t.Errorf("%s: PendingSignals(%v) (-want +got):\n%s", tt.name, tt.shared, diff)
		}
		if tt.shared && len(got) == 1 && int32(got[0].Value()) != 42 {
			t.Errorf("%s: queued value = %d, want 42", tt.name, int32(got[0].Value()))
		}
	}

	mask, err := tr.SigMask()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1<<(unix.SIGHUP-1) | 1<<(unix.SIGUSR2-1)); mask != want {
		t.Errorf("SigMask() = %#x, want %#x", mask, want)
	}
}

// A signal dequeued before PTRACE_INTERRUPT takes effect must reach its
// handler, not vanish. PTRACE_SEIZE and the signal are issued by hand so the
// signal-delivery stop deterministically comes first.
func TestStopDeliversSignalDequeuedFirst(t *testing.T) {
	ptracetest.LockThread(t)
	cmd, handler, out := startSigProgram(t)
	pid := cmd.Process.Pid
	if _, err := ptrace(unix.PTRACE_SEIZE, pid, 0, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitState(t, pid, "t")

	tr := &Tracee{Tid: pid, tracer: unix.Gettid()}
	if err := tr.interrupt(); err != nil {
		t.Fatal(err)
	}
	regs, err := tr.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if regs.Rip != handler {
		t.Errorf("rip at the interrupt stop = %#x, want the SIGUSR1 handler %#x", regs.Rip, handler)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	line, err := out.ReadString('\n')
	if err != nil || line != "usr1\n" {
		t.Errorf("program printed %q, %v; want \"usr1\\n\"", line, err)
	}
}

func TestSeizeGroupStopped(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t)
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitState(t, pid, "T")

	tr := seize(t, pid)
	if got := tr.GroupStopSignal(); got != int(unix.SIGSTOP) {
		t.Errorf("GroupStopSignal() = %d, want SIGSTOP", got)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitState(t, pid, "T")
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_RESTART_SYSCALL)
}

func TestWaitReportsDeath(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t)
	tr := seize(t, pid)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Wait()
	var exit *ExitError
	if !errors.As(err, &exit) || !errors.Is(err, ErrExited) {
		t.Fatalf("Wait() error = %v, want an *ExitError", err)
	}
	if !exit.Status.Signaled() || exit.Status.Signal() != unix.SIGKILL {
		t.Errorf("exit status = %#x, want killed by SIGKILL", uint32(exit.Status))
	}
}

func TestWrongThread(t *testing.T) {
	ptracetest.LockThread(t)
	tr := seize(t, startSleep(t))
	defer tr.Detach()

	errc := make(chan error)
	go func() {
		ptracetest.LockThread(t)
		_, err := tr.Regs()
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, ErrWrongThread) {
		t.Errorf("Regs() from another thread: error = %v, want ErrWrongThread", err)
	}
}

func TestSeizeMissingThread(t *testing.T) {
	ptracetest.LockThread(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := Seize(cmd.Process.Pid); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Seize(reaped pid) error = %v, want ESRCH", err)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name   string
		status unix.WaitStatus
		want   StopKind
	}{
		{"interrupt", 0x80057f, InterruptStop},
		{"group stop", unix.PTRACE_EVENT_STOP<<16 | unix.WaitStatus(unix.SIGSTOP)<<8 | 0x7f, GroupStop},
		{"syscall", unix.WaitStatus(unix.SIGTRAP|0x80)<<8 | 0x7f, SyscallStop},
		{"signal delivery", unix.WaitStatus(unix.SIGUSR1)<<8 | 0x7f, SignalDeliveryStop},
		{"plain SIGTRAP", unix.WaitStatus(unix.SIGTRAP)<<8 | 0x7f, SignalDeliveryStop},
		{"exec event", unix.PTRACE_EVENT_EXEC<<16 | unix.WaitStatus(unix.SIGTRAP)<<8 | 0x7f, EventStop},
		{"exited", 3 << 8, NotStopped},
		{"killed", unix.WaitStatus(unix.SIGKILL), NotStopped},
	}
	for _, tt := range tests {
		if got := KindOf(tt.status); got != tt.want {
			t.Errorf("%s: KindOf(%#x) = %d, want %d", tt.name, uint32(tt.status), got, tt.want)
		}
	}
}

func TestParseXStateLayout(t *testing.T) {
	full := make([]byte, 2440)
	copy(full[464:], []byte{0x07, 0x02})
	tests := []struct {
		name    string
		buf     []byte
		want    XStateLayout
		wantErr error
	}{
		{"x87 SSE AVX PKRU", full, XStateLayout{XCR0: 0x207, Size: 2440}, nil},
		{"short", make([]byte, 470), XStateLayout{}, ErrXStateShort},
	}
	for _, tt := range tests {
		got, err := ParseXStateLayout(tt.buf)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// Tracing processes needs root here; say so rather than fail.
		os.Stdout.WriteString("skipping: ptrace tests need root\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

package remote

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/ptrace/ptracetest"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := ptracetest.Start(t, exec.Command("sleep", "100"))
	ptracetest.WaitBlockedIn(t, cmd.Process.Pid, unix.SYS_CLOCK_NANOSLEEP)
	return cmd
}

func seize(t *testing.T, pid int) (*ptrace.Tracee, *Remote) {
	t.Helper()
	tr, err := ptrace.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(tr)
	if err != nil {
		t.Fatal(err)
	}
	return tr, r
}

func syscallOK(t *testing.T, r *Remote, nr int, args ...uint64) uint64 {
	t.Helper()
	ret, err := r.Syscall(nr, args...)
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// mapping returns the permissions of the mapping holding addr, or "" if
// addr is unmapped.
func mapping(t *testing.T, pid int, addr uint64) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("malformed maps line %q", s.Text())
		}
		if start <= addr && addr < end {
			return fields[1]
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}

// freeAddress returns a page-aligned address unmapped in pid, far from
// where the kernel places mappings by itself.
func freeAddress(t *testing.T, pid int) uint64 {
	t.Helper()
	for addr := uint64(0x10_0000_0000); addr < 0x20_0000_0000; addr += 0x1_0000_0000 {
		if mapping(t, pid, addr) == "" {
			return addr
		}
	}
	t.Fatal("no free address")
	return 0
}

func readProcMem(t *testing.T, pid int, addr uint64, n int) []byte {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInjectAndRestoreSleep(t *testing.T) {
	ptracetest.LockThread(t)
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	tr, r := seize(t, pid)
	saved := r.Regs()
	code := readProcMem(t, pid, saved.Rip, 8)

	if got := syscallOK(t, r, unix.SYS_GETPID); got != uint64(pid) {
		t.Errorf("getpid() = %d, want %d", got, pid)
	}
	if diff := cmp.Diff(code, readProcMem(t, pid, saved.Rip, 8)); diff != "" {
		t.Errorf("code at rip not put back after a borrowed call (-want +got):\n%s", diff)
	}

	// An anonymous mapping made and removed by injected calls; a
	// read-only one also takes writes through /proc/PID/mem.
	anon := syscallOK(t, r, unix.SYS_MMAP, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if perms := mapping(t, pid, anon); perms != "r--p" {
		t.Errorf("injected mmap: mapping %q, want r--p", perms)
	}
	if err := r.WriteMem(anon+100, []byte("forced")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if err := r.ReadMem(anon+100, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "forced" {
		t.Errorf("read back %q from a read-only page, want %q", got, "forced")
	}
	syscallOK(t, r, unix.SYS_MUNMAP, anon, 4096)
	if perms := mapping(t, pid, anon); perms != "" {
		t.Errorf("after injected munmap: mapping %q, want none", perms)
	}

	page, err := r.MapPage(0)
	if err != nil {
		t.Fatal(err)
	}
	if perms := mapping(t, pid, page); perms != "rwxp" {
		t.Errorf("MapPage: mapping %q, want rwxp", perms)
	}
	if r.ScratchAddr() <= page || r.ScratchAddr()+uint64(r.ScratchSize()) != page+uint64(os.Getpagesize()) {
		t.Errorf("scratch [%#x, +%d) not within the page %#x after the instruction", r.ScratchAddr(), r.ScratchSize(), page)
	}
	if got := syscallOK(t, r, unix.SYS_GETTID); got != uint64(pid) {
		t.Errorf("gettid() from the page = %d, want %d", got, pid)
	}
	// The scratch memory carries arguments: uname fills it.
	if err := r.WriteMem(r.ScratchAddr(), make([]byte, 65*6)); err != nil {
		t.Fatal(err)
	}
	syscallOK(t, r, unix.SYS_UNAME, r.ScratchAddr())
	sysname := make([]byte, 5)
	if err := r.ReadMem(r.ScratchAddr(), sysname); err != nil {
		t.Fatal(err)
	}
	if string(sysname) != "Linux" {
		t.Errorf("uname sysname %q, want Linux", sysname)
	}
	if _, err := r.Syscall(unix.SYS_CLOSE, 1<<20); !errors.Is(err, unix.EBADF) {
		t.Errorf("close(1<<20) error = %v, want EBADF", err)
	}

	restoreAndCompare(t, r, tr, saved)
	if _, err := r.Syscall(unix.SYS_GETPID); !errors.Is(err, ErrDone) {
		t.Errorf("Syscall after Restore: error = %v, want ErrDone", err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	if perms := mapping(t, pid, page); perms != "" {
		t.Errorf("page still mapped after Restore: %q", perms)
	}
	if diff := cmp.Diff(code, readProcMem(t, pid, saved.Rip, 8)); diff != "" {
		t.Errorf("code at rip after Restore (-want +got):\n%s", diff)
	}
	// Still sleeping: the kernel resumed clock_nanosleep through
	// restart_syscall.
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_RESTART_SYSCALL)
}

func TestMapPageAtHint(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t).Process.Pid
	tr, r := seize(t, pid)
	defer tr.Detach()
	defer r.Restore()

	taken := r.Regs().Rip &^ uint64(os.Getpagesize()-1)
	if _, err := r.MapPage(taken); !errors.Is(err, unix.EEXIST) {
		t.Errorf("MapPage(%#x) over the code: error = %v, want EEXIST", taken, err)
	}
	free := freeAddress(t, pid)
	got, err := r.MapPage(free)
	if err != nil {
		t.Fatal(err)
	}
	if got != free || r.Page() != free {
		t.Errorf("MapPage(%#x) = %#x, Page() = %#x", free, got, r.Page())
	}
	if got := syscallOK(t, r, unix.SYS_GETPID); got != uint64(pid) {
		t.Errorf("getpid() from the page = %d, want %d", got, pid)
	}
	if _, err := r.MapPage(0); !errors.Is(err, ErrPageMapped) {
		t.Errorf("second MapPage: error = %v, want ErrPageMapped", err)
	}
}

// A thread blocked in read() must get its data after injection and detach,
// with no EINTR leaking into the program.
func TestInjectIntoBlockedRead(t *testing.T) {
	ptracetest.LockThread(t)
	stdin, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	outPath := filepath.Join(t.TempDir(), "out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("head", "-c", "5")
	cmd.Stdin, cmd.Stdout = stdin, out
	ptracetest.Start(t, cmd)
	stdin.Close()
	pid := cmd.Process.Pid
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_READ)

	tr, r := seize(t, pid)
	const erestartsys = -512
	if regs := r.Regs(); int64(regs.Rax) != erestartsys || regs.Orig_rax != unix.SYS_READ {
		t.Errorf("interrupted read: rax %d orig_rax %d, want %d and %d", int64(regs.Rax), int64(regs.Orig_rax), erestartsys, unix.SYS_READ)
	}
	syscallOK(t, r, unix.SYS_GETPID)
	if _, err := r.MapPage(0); err != nil {
		t.Fatal(err)
	}
	syscallOK(t, r, unix.SYS_GETPPID)
	syscallOK(t, r, unix.SYS_GETTID)
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}

	if _, err := feed.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("head after injection: %v", err)
	}
	if got, err := os.ReadFile(outPath); err != nil || string(got) != "hello" {
		t.Errorf("head wrote %q, %v; want \"hello\"", got, err)
	}
}

// Signals sent while calls are injected wait in the queue and are acted on
// once the thread is detached.
func TestSignalsWaitDuringInjection(t *testing.T) {
	ptracetest.LockThread(t)
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	tr, r := seize(t, pid)
	if _, err := r.MapPage(0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		syscallOK(t, r, unix.SYS_GETPID)
	}
	pending, err := tr.PendingSignals(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Signo() != int(unix.SIGTERM) {
		t.Errorf("process-wide queue holds %d signals, want SIGTERM only", len(pending))
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != unix.SIGTERM {
		t.Errorf("sleep ended with %v, want killed by SIGTERM", err)
	}
}

// SIGSTOP cannot be blocked: it stops the process mid-injection, injection
// goes on, and the process is still stopped after Detach.
func TestSIGSTOPDuringInjection(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t).Process.Pid
	tr, r := seize(t, pid)
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if got := syscallOK(t, r, unix.SYS_GETPID); got != uint64(pid) {
		t.Errorf("getpid() = %d, want %d", got, pid)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
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

func TestInjectIntoGroupStopped(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t).Process.Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ptracetest.WaitState(t, pid, "T")
	tr, r := seize(t, pid)
	if _, err := r.MapPage(0); err != nil {
		t.Fatal(err)
	}
	if got := syscallOK(t, r, unix.SYS_GETPID); got != uint64(pid) {
		t.Errorf("getpid() = %d, want %d", got, pid)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
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

// Finish unmaps the page it runs from with its last call; given the
// thread's own registers the thread then carries on.
func TestFinish(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t).Process.Pid
	tr, r := seize(t, pid)
	page, err := r.MapPage(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(r.Regs()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	if perms := mapping(t, pid, page); perms != "" {
		t.Errorf("page still mapped after Finish: %q", perms)
	}
	ptracetest.WaitBlockedIn(t, pid, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_RESTART_SYSCALL)
}

func TestTraceeKilledDuringInjection(t *testing.T) {
	ptracetest.LockThread(t)
	pid := startSleep(t).Process.Pid
	tr, r := seize(t, pid)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Depending on how far the kill got, the call fails at the memory
	// write, at the resume (ESRCH) or at the wait, which alone knows the
	// tracee is dead; Wait then says so.
	_, err := r.Syscall(unix.SYS_GETPID)
	if err == nil {
		t.Fatal("Syscall into a killed tracee succeeded")
	}
	if !errors.Is(err, ptrace.ErrExited) {
		if _, err := tr.Wait(); !errors.Is(err, ptrace.ErrExited) {
			t.Errorf("Wait after a failed Syscall: error = %v, want ErrExited", err)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Stdout.WriteString("skipping: remote tests need root\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rseqProgram spins inside an rseq critical section whose abort handler
// counts the abort and re-enters the section. It prints the section's
// start, end and abort addresses and the counter's address.
const rseqProgram = `
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>

extern char cs_start[], cs_end[], cs_abort[];

static struct {
	uint32_t version, flags;
	uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32))) desc;

static uint64_t aborts;

int main(void) {
	if (__rseq_size == 0) {
		puts("no rseq");
		return 1;
	}
	char *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	desc.start_ip = (uintptr_t)cs_start;
	desc.post_commit_offset = (uintptr_t)cs_end - (uintptr_t)cs_start;
	desc.abort_ip = (uintptr_t)cs_abort;
	printf("%lx %lx %lx %lx\n", (unsigned long)cs_start, (unsigned long)cs_end,
	       (unsigned long)cs_abort, (unsigned long)&aborts);
	fflush(stdout);
	__asm__ volatile(
		".globl cs_start, cs_end, cs_abort\n"
		"1:\n"
		"	movq %[desc], 8(%[area])\n"
		"cs_start:\n"
		"	jmp cs_start\n"
		"cs_end:\n"
		"	.long 0x53053053\n"
		"cs_abort:\n"
		"	incq %[aborts]\n"
		"	jmp 1b\n"
		: [aborts] "+m"(aborts)
		: [desc] "r"(&desc), [area] "r"(area)
		: "memory");
	return 0;
}
`

// A thread stopped inside an rseq critical section must resume at the abort
// handler, as the kernel would have made it after any preemption, rather
// than back inside a section the kernel no longer guards.
func TestRseqCriticalSectionAborts(t *testing.T) {
	ptracetest.LockThread(t)
	cmd := exec.Command(ptracetest.BuildC(t, rseqProgram))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ptracetest.Start(t, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var start, end, abort, counter uint64
	if _, err := fmt.Sscanf(line, "%x %x %x %x", &start, &end, &abort, &counter); err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	aborts := func() uint64 { return binary.LittleEndian.Uint64(readProcMem(t, cmd.Process.Pid, counter, 8)) }
	pid := cmd.Process.Pid
	// The program may still be on its way into the section: stop it until
	// it is caught inside.
	var tr *ptrace.Tracee
	for deadline := time.Now().Add(ptracetest.Timeout); ; {
		tr, err = ptrace.Seize(pid)
		if err != nil {
			t.Fatal(err)
		}
		regs, err := tr.Regs()
		if err != nil {
			t.Fatal(err)
		}
		if start <= regs.Rip && regs.Rip < end {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rip %#x never inside the critical section [%#x, %#x)", regs.Rip, start, end)
		}
		if err := tr.Detach(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	r, err := New(tr)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Regs().Rip; got != abort {
		t.Errorf("saved rip = %#x, want the abort handler %#x", got, abort)
	}
	syscallOK(t, r, unix.SYS_GETPID)
	before := aborts()
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(ptracetest.Timeout); aborts() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("abort count stuck at %d: the thread went back into the section", before)
		}
	}
}

// trapCounter counts the SIGTRAPs its handler sees (or ignores SIGTRAP,
// given "ignore") and prints the count when SIGUSR1 comes.
const trapCounter = `
#include <signal.h>
#include <stdio.h>
#include <string.h>
static volatile sig_atomic_t traps, done;
static void on_trap(int s) { (void)s; traps++; }
static void on_usr1(int s) { (void)s; done = 1; }
int main(int argc, char **argv) {
	signal(SIGTRAP, argc > 1 && !strcmp(argv[1], "ignore") ? SIG_IGN : on_trap);
	signal(SIGUSR1, on_usr1);
	sigset_t block, none;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTRAP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&none);
	puts("ready");
	fflush(stdout);
	while (!done) sigsuspend(&none);
	printf("traps=%d\n", traps);
	return 0;
}
`

// A batch gives each call's result as a single run would, leaves the
// thread as it found it, and its SIGTRAP neither reaches the program's
// handler nor changes its disposition; where SIGTRAP is ignored the calls
// run one by one, with the same results.
func TestBatch(t *testing.T) {
	bin := ptracetest.BuildC(t, trapCounter)
	for _, tc := range []struct {
		arg       string
		trapUsed  bool
		wantTraps string
	}{
		{arg: "handle", trapUsed: true, wantTraps: "traps=1"},
		{arg: "ignore", trapUsed: false, wantTraps: "traps=0"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			ptracetest.LockThread(t)
			cmd := exec.Command(bin, tc.arg)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			ptracetest.Start(t, cmd)
			lines := bufio.NewScanner(out)
			if !lines.Scan() || lines.Text() != "ready" {
				t.Fatalf("subject: %q, %v", lines.Text(), lines.Err())
			}
			pid := cmd.Process.Pid
			ptracetest.WaitBlockedIn(t, pid, unix.SYS_RT_SIGSUSPEND)
			before := signalState(t, pid)
			tr, r := seize(t, pid)
			saved := r.Regs()
			if _, err := r.Batch([]Call{{Nr: unix.SYS_GETPID}}); err == nil {
				t.Error("Batch without a mapped page succeeded")
			}
			if _, err := r.MapPage(0); err != nil {
				t.Fatal(err)
			}
			if got := r.trapUsable(); got != tc.trapUsed {
				t.Errorf("trapUsable() = %v, want %v", got, tc.trapUsed)
			}
			scratch := r.ScratchAddr()
			got, err := r.Batch([]Call{
				{Nr: unix.SYS_GETPID},
				{Nr: unix.SYS_UNAME, Args: []uint64{scratch}},
				{Nr: unix.SYS_CLOSE, Args: []uint64{1 << 20}},
				{Nr: unix.SYS_PRCTL, Args: []uint64{unix.PR_GET_PDEATHSIG, scratch + 512}},
				{Nr: unix.SYS_GETPPID},
			})
			if err != nil {
				t.Fatal(err)
			}
			ebadf := -int64(unix.EBADF)
			want := []uint64{uint64(pid), 0, uint64(ebadf), 0, uint64(os.Getpid())}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("batch results (-want +got):\n%s", diff)
			}
			sysname := make([]byte, 5)
			if err := r.ReadMem(scratch, sysname); err != nil {
				t.Fatal(err)
			}
			if string(sysname) != "Linux" {
				t.Errorf("uname in the batch: sysname %q, want Linux", sysname)
			}
			// More calls than one resume holds: the batch is split.
			many := make([]Call, 3*r.maxBatch()+1)
			for i := range many {
				many[i] = Call{Nr: unix.SYS_GETPID}
			}
			pids, err := r.Batch(many)
			if err != nil {
				t.Fatal(err)
			}
			if len(pids) != len(many) || slices.ContainsFunc(pids, func(p uint64) bool { return p != uint64(pid) }) {
				t.Errorf("a batch of %d getpid calls gave %v, want %d times %d", len(many), pids, len(many), pid)
			}
			// An ordinary call still works after a batch.
			if v := syscallOK(t, r, unix.SYS_GETTID); v != uint64(pid) {
				t.Errorf("gettid() after the batch = %d, want %d", v, pid)
			}
			restoreAndCompare(t, r, tr, saved)
			if err := tr.Detach(); err != nil {
				t.Fatal(err)
			}
			ptracetest.WaitBlockedIn(t, pid, unix.SYS_RT_SIGSUSPEND, unix.SYS_RESTART_SYSCALL)
			if diff := cmp.Diff(before, signalState(t, pid)); diff != "" {
				t.Errorf("signal state after the batch (-before +after):\n%s", diff)
			}
			if err := unix.Kill(pid, unix.SIGTRAP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			if !lines.Scan() || lines.Text() != tc.wantTraps {
				t.Errorf("subject after the batch: %q (%v), want %q", lines.Text(), lines.Err(), tc.wantTraps)
			}
		})
	}
}

// signalState is what /proc/PID/status says of pid's signals.
func signalState(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// SigQ counts the signals queued for the whole user: not this
		// process's state.
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.HasPrefix(k, "Sig") || k == "ShdPnd") && k != "SigQ" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// The syscall instruction calls run from before MapPage is the vDSO's, so
// no code of the program is written to.
func TestFindSyscallInstruction(t *testing.T) {
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	addr, err := FindSyscallInstruction(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := readProcMem(t, pid, addr, 2); string(got) != syscallInstruction {
		t.Errorf("bytes at %#x: %x, want 0f05", addr, got)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if !strings.HasSuffix(line, "[vdso]") {
			continue
		}
		lo, hi, _ := strings.Cut(strings.Fields(line)[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		if addr < start || addr >= end {
			t.Errorf("syscall instruction at %#x, outside the vDSO %#x-%#x", addr, start, end)
		}
		return
	}
	t.Skip("no vDSO in the process")
}

// restoreAndCompare restores the thread and checks that its registers are
// saved, as they were before the calls.
func restoreAndCompare(t *testing.T, r *Remote, tr *ptrace.Tracee, saved ptrace.Regs) {
	t.Helper()
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	regs, err := tr.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(saved, regs); diff != "" {
		t.Errorf("registers after Restore (-want +got):\n%s", diff)
	}
}

// What the caller tells with Know is what the Remote goes by: the syscall
// instruction is looked for in the layout given, and the batch's SIGTRAP
// is not used when a SIGTRAP is said to be pending or ignored.
func TestKnow(t *testing.T) {
	trapBit := uint64(1) << (unix.SIGTRAP - 1)
	for _, tc := range []struct {
		name      string
		known     Known
		trap      bool
		vdsoFound bool // the syscall instruction run from is the vDSO's
	}{
		{name: "nothing known", known: Known{}, trap: true, vdsoFound: true},
		{name: "signals clear", known: Known{Signals: true}, trap: true, vdsoFound: true},
		{name: "trap pending", known: Known{Signals: true, Pending: trapBit}, trap: false, vdsoFound: true},
		{name: "trap ignored", known: Known{Signals: true, Ignored: trapBit}, trap: false, vdsoFound: true},
		{name: "no executable mapping", known: Known{Maps: []procfs.Mapping{}}, trap: true, vdsoFound: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptracetest.LockThread(t)
			cmd := startSleep(t)
			pid := cmd.Process.Pid
			maps, err := procfs.ReadMaps(pid)
			if err != nil {
				t.Fatal(err)
			}
			var vdso procfs.Mapping
			for _, m := range maps {
				if m.Kind == procfs.KindVdso {
					vdso = m
				}
			}
			if vdso.Start == 0 {
				t.Skip("no vDSO in the process")
			}
			tr, r := seize(t, pid)
			saved := r.Regs()
			r.Know(tc.known)
			if got := r.trapUsable(); got != tc.trap {
				t.Errorf("trapUsable() = %v, want %v", got, tc.trap)
			}
			if got := syscallOK(t, r, unix.SYS_GETPID); got != uint64(pid) {
				t.Errorf("getpid() = %d, want %d", got, pid)
			}
			if inVdso := r.gadget >= vdso.Start && r.gadget < vdso.End; inVdso != tc.vdsoFound {
				t.Errorf("calls ran from %#x; in the vDSO %#x-%#x: %v, want %v", r.gadget, vdso.Start, vdso.End, inVdso, tc.vdsoFound)
			}
			restoreAndCompare(t, r, tr, saved)
		})
	}
}

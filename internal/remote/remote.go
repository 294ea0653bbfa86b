package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
)

// syscallInstruction is the x86_64 "syscall" opcode.
const syscallInstruction = "\x0f\x05"

const (
	flagTrap      = 0x100 // TF: a single-step trap after the syscall would be a stray SIGTRAP
	flagDirection = 0x400 // DF: the ABI promises it clear at a syscall

	// scratchOffset keeps scratch memory clear of the instruction and
	// 16-byte aligned.
	scratchOffset = 16

	// blockAll is what PTRACE_SETSIGMASK makes of "block everything": the
	// kernel keeps SIGKILL and SIGSTOP deliverable.
	blockAll = ^uint64(0)
)

var (
	// ErrDone is returned by every method after Restore or Finish.
	ErrDone = errors.New("already restored or finished")
	// ErrPageMapped is returned by a second MapPage.
	ErrPageMapped = errors.New("page already mapped")
)

// SignalError reports that the tracee took a signal that cannot be blocked
// while a call was being injected. With everything else blocked this is a
// signal the kernel forced because of the injected call itself, such as the
// SIGSYS of a seccomp filter (seize with ptrace.SuspendSeccomp to avoid
// that). The signal is discarded and the call's result is unknown.
type SignalError struct {
	Signal unix.Signal
}

func (e *SignalError) Error() string {
	return fmt.Sprintf("tracee took signal %v during an injected system call", e.Signal)
}

// Remote injects system calls into one stopped thread. Its methods must be
// called from the OS thread that seized the tracee.
type Remote struct {
	t        *ptrace.Tracee
	mem      *os.File
	saved    ptrace.Regs
	mask     uint64
	code     [8]byte // at saved.Rip
	poked    bool    // code at saved.Rip currently holds syscallInstruction
	page     uint64
	gadget   uint64 // a syscall instruction already in the process (UseSyscallAt)
	lost     uint64 // a page MapPage may have mapped, its address unread
	midCall  bool   // the last call failed between its stops
	searched bool   // FindSyscallInstruction was tried
	pageSize uint64
	done     bool
	known    Known
}

// Known is what the caller has read of the process already. Told with
// Know, the Remote does not read it again from /proc while the process is
// frozen: each read cost 0.05-0.4 ms here, about as much as an injected
// call.
type Known struct {
	// Maps is the process's memory layout, where a syscall instruction to
	// run calls from is looked for (FindSyscallInstruction).
	Maps []procfs.Mapping
	// Signals says that Ignored and Pending are set: the signals the
	// process ignores, and those pending for the thread or the process
	// (bit n-1 for signal n).
	Signals          bool
	Ignored, Pending uint64
}

// Know tells the Remote what the caller has read of the process already.
func (r *Remote) Know(k Known) { r.known = k }

// New prepares injection into a thread that is in a ptrace stop (as Seize
// leaves it). It saves the registers, the signal mask and the 8 code bytes
// at the instruction pointer, and blocks all signals for the duration.
// The registers are as the kernel would resume the thread: see Regs.
func New(t *ptrace.Tracee) (*Remote, error) {
	regs, err := t.Regs()
	if err != nil {
		return nil, err
	}
	mask, err := t.SigMask()
	if err != nil {
		return nil, err
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", t.Tid), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	r := &Remote{t: t, mem: mem, saved: regs, mask: mask, pageSize: uint64(os.Getpagesize())}
	if err := r.leaveRseqSection(); err != nil {
		mem.Close()
		return nil, err
	}
	if err := r.ReadMem(r.saved.Rip, r.code[:]); err != nil {
		mem.Close()
		return nil, fmt.Errorf("code at the instruction pointer: %w", err)
	}
	if err := t.SetSigMask(blockAll); err != nil {
		mem.Close()
		return nil, err
	}
	return r, nil
}

// leaveRseqSection moves a thread stopped in user mode inside an rseq
// critical section to the section's abort handler. The kernel does the same
// when the thread next returns to user mode after having been scheduled out,
// as it was to stop; but it decides on the instruction pointer it then sees,
// which injection replaces. Left alone, the first injected call would be
// diverted to the abort handler (or, if code at the instruction pointer is
// borrowed, be a system call inside the section, which a DEBUG_RSEQ kernel
// punishes with SIGSEGV), and Restore would return the thread into a
// section the kernel had stopped guarding.
func (r *Remote) leaveRseqSection() error {
	if int64(r.saved.Orig_rax) >= 0 {
		// In a system call: sections must not make any, and the
		// restart logic depends on rip, so leave it to the kernel.
		return nil
	}
	cfg, err := r.t.Rseq()
	if err != nil {
		return err
	}
	if cfg.Address == 0 {
		return nil
	}
	le := binary.LittleEndian
	var field [8]byte // struct rseq.rseq_cs
	if err := r.ReadMem(cfg.Address+8, field[:]); err != nil {
		return fmt.Errorf("rseq area: %w", err)
	}
	descAddr := le.Uint64(field[:])
	if descAddr == 0 {
		return nil
	}
	var desc [32]byte // struct rseq_cs
	if err := r.ReadMem(descAddr, desc[:]); err != nil {
		return fmt.Errorf("rseq critical section descriptor: %w", err)
	}
	start, length, abort := le.Uint64(desc[8:]), le.Uint64(desc[16:]), le.Uint64(desc[24:])
	if r.saved.Rip-start >= length {
		return nil
	}
	var signature [4]byte
	if err := r.ReadMem(abort-4, signature[:]); err != nil {
		return fmt.Errorf("rseq abort signature: %w", err)
	}
	if got := le.Uint32(signature[:]); got != cfg.Signature {
		return fmt.Errorf("thread %d in rseq critical section [%#x, %#x): abort handler %#x signed %#x, registered %#x", r.t.Tid, start, start+length, abort, got, cfg.Signature)
	}
	r.saved.Rip = abort
	return nil
}

// Regs returns the registers the thread had when New was called, except
// that a thread stopped inside an rseq critical section is at its abort
// handler, where the kernel would have resumed it. Restore puts these back.
func (r *Remote) Regs() ptrace.Regs { return r.saved }

// Syscall runs system call nr with up to six arguments in the tracee and
// returns its result. A result in -4095..-1 is returned as a wrapped
// unix.Errno. The other registers are those New saved, so calls that use
// the stack (or registers beyond the arguments) see the thread's own. If
// the tracee dies, the error wraps ptrace.ErrExited only when the death was
// seen while waiting; a failed memory access or ESRCH come first if it died
// before, and Tracee.Wait then reports the death.
func (r *Remote) Syscall(nr int, args ...uint64) (uint64, error) {
	ret, _, err := r.call(nr, args)
	return ret, err
}

// call is Syscall, also saying, when it fails, whether the call may have
// been made all the same: driving the thread through it failed, and its
// effect is unknown.
func (r *Remote) call(nr int, args []uint64) (ret uint64, mayHaveRun bool, err error) {
	if r.done {
		return 0, false, ErrDone
	}
	if len(args) > 6 {
		return 0, false, fmt.Errorf("syscall %d with %d arguments, at most 6", nr, len(args))
	}
	if err := fault.Injected(nr); err != nil {
		return 0, false, fmt.Errorf("syscall %d in thread %d: %w", nr, r.t.Tid, err)
	}
	ret, err = r.run(nr, args)
	if err != nil {
		return 0, true, fmt.Errorf("syscall %d in thread %d: %w", nr, r.t.Tid, err)
	}
	if err := ResultError(ret); err != nil {
		return 0, false, fmt.Errorf("syscall %d in thread %d: %w", nr, r.t.Tid, err)
	}
	return ret, true, nil
}

func (r *Remote) run(nr int, args []uint64) (ret uint64, err error) {
	regs := r.saved
	// orig_rax = -1 keeps the kernel from restarting the call the thread
	// was interrupted in on top of the injected one.
	regs.Orig_rax = math.MaxUint64
	regs.Rax = uint64(nr)
	regs.Eflags &^= flagTrap | flagDirection
	argRegs := []*uint64{&regs.Rdi, &regs.Rsi, &regs.Rdx, &regs.R10, &regs.R8, &regs.R9}
	for i, a := range args {
		*argRegs[i] = a
	}
	regs.Rip = r.page
	if r.page == 0 && r.gadget == 0 && !r.searched {
		// Writing into the program's code costs a copy of the page and,
		// on a machine with shadow paging, a resync of the whole address
		// space at the next resume (9 ms for 1 GiB, 40 ms for 4 GiB,
		// measured here): a syscall instruction the process already has
		// costs nothing.
		r.searched = true
		maps := r.known.Maps
		if maps == nil {
			maps, _ = procfs.ReadMaps(r.t.Tid)
		}
		// Through the memory file this Remote holds already.
		r.gadget, _ = syscallInstructionIn(r.mem, maps)
	}
	if r.page == 0 && r.gadget != 0 {
		regs.Rip = r.gadget
	} else if r.page == 0 {
		regs.Rip = r.saved.Rip
		if err := r.WriteMem(r.saved.Rip, []byte(syscallInstruction)); err != nil {
			return 0, fmt.Errorf("borrow code at %#x: %w", r.saved.Rip, err)
		}
		r.poked = true
		defer func() {
			err = errors.Join(err, r.unpoke())
		}()
	}
	if r.midCall {
		if err := r.skipPendingEntry(); err != nil {
			return 0, err
		}
	}
	if err := r.t.SetRegs(regs); err != nil {
		return 0, err
	}

	r.midCall = true
	entry, err := r.resumeUntil(ptrace.SyscallEntry)
	if err != nil {
		return 0, err
	}
	if entry.Nr != uint64(nr) || entry.InstructionPointer != regs.Rip+2 {
		return 0, fmt.Errorf("entry stop at syscall %d, ip %#x; want %d, ip %#x", entry.Nr, entry.InstructionPointer, nr, regs.Rip+2)
	}
	exit, err := r.resumeUntil(ptrace.SyscallExit)
	if err != nil {
		return 0, err
	}
	r.midCall = false
	return uint64(exit.ReturnValue), nil
}

// skipPendingEntry brings a thread the last call left between its stops
// to a known place: left at that call's entry, resumed as is it would run
// the call, or, with the registers of the next, skip it and clobber rax
// on the way; it is skipped on its own first (orig_rax -1). Left anywhere
// else, the next call's registers and resume take it on.
func (r *Remote) skipPendingEntry() error {
	info, err := r.t.SyscallInfo()
	if err != nil {
		return err
	}
	if info.Op == ptrace.SyscallEntry {
		regs, err := r.t.Regs()
		if err != nil {
			return err
		}
		regs.Orig_rax = math.MaxUint64
		if err := r.t.SetRegs(regs); err != nil {
			return err
		}
		if _, err := r.resumeUntil(ptrace.SyscallExit); err != nil {
			return err
		}
	}
	r.midCall = false
	return nil
}

// resumeUntil resumes the thread until the syscall stop op, passing on
// job-control stops and ignoring ptrace interrupts left pending by Seize.
func (r *Remote) resumeUntil(op ptrace.SyscallOp) (ptrace.SyscallInfo, error) {
	sig := 0
	for {
		if err := r.t.Syscall(sig); err != nil {
			return ptrace.SyscallInfo{}, err
		}
		sig = 0
		ws, err := r.t.Wait()
		if err != nil {
			return ptrace.SyscallInfo{}, err
		}
		switch ptrace.KindOf(ws) {
		case ptrace.SyscallStop:
			info, err := r.t.SyscallInfo()
			if err != nil {
				return info, err
			}
			if info.Op == ptrace.SyscallNone {
				// Seen (rarely) at the exit of a call injected into a
				// process whose children were being rebuilt meanwhile: a
				// syscall stop whose kind the kernel no longer tells.
				// Syscall stops come only at entry and exit, and this
				// thread's entry was seen, so the registers say which.
				if info, err = r.syscallInfoFromRegs(op); err != nil {
					return info, err
				}
			}
			if info.Op != op {
				return info, fmt.Errorf("syscall %s stop while waiting for %s", info.Op, op)
			}
			return info, nil
		case ptrace.SignalDeliveryStop:
			if s := ws.StopSignal(); s != unix.SIGSTOP {
				return ptrace.SyscallInfo{}, &SignalError{Signal: s}
			}
			// Delivering SIGSTOP puts the process in a group stop, which
			// the kernel reports as a GroupStop and keeps after Detach,
			// just as if it had come a moment later.
			sig = int(unix.SIGSTOP)
		case ptrace.InterruptStop, ptrace.GroupStop:
		case ptrace.EventStop:
			// A clone made while the tracer asked to trace clones
			// (ptrace.Tracee.TraceClones): the call goes on to its exit.
		default:
			return ptrace.SyscallInfo{}, &ptrace.UnexpectedStopError{Tid: r.t.Tid, Status: ws}
		}
	}
}

// syscallInfoFromRegs describes the syscall stop the thread is in from its
// registers: at entry rax holds -ENOSYS, at exit the result.
func (r *Remote) syscallInfoFromRegs(want ptrace.SyscallOp) (ptrace.SyscallInfo, error) {
	regs, err := r.t.Regs()
	if err != nil {
		return ptrace.SyscallInfo{}, err
	}
	info := ptrace.SyscallInfo{InstructionPointer: regs.Rip, StackPointer: regs.Rsp, Nr: regs.Orig_rax,
		Args: [6]uint64{regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9}}
	switch {
	case want == ptrace.SyscallEntry && int64(regs.Rax) == -int64(unix.ENOSYS):
		info.Op = ptrace.SyscallEntry
	case want == ptrace.SyscallExit:
		info.Op = ptrace.SyscallExit
		info.ReturnValue = int64(regs.Rax)
		info.IsError = info.ReturnValue < 0 && info.ReturnValue >= -4095
	}
	return info, nil
}

func (r *Remote) unpoke() error {
	if !r.poked {
		return nil
	}
	if err := r.WriteMem(r.saved.Rip, r.code[:len(syscallInstruction)]); err != nil {
		return fmt.Errorf("put back code at %#x: %w", r.saved.Rip, err)
	}
	r.poked = false
	return nil
}

// UseSyscallAt makes calls run from a syscall instruction the process
// already has at addr (its vDSO has some), instead of borrowing the code at
// the thread's instruction pointer: writing there is only safe while every
// thread of the process is stopped, and with this one thread stopped the
// others may be running that code. The thread stops at each call's exit,
// before it runs what follows addr.
func (r *Remote) UseSyscallAt(addr uint64) { r.gadget = addr }

// FindSyscallInstruction returns the address of a syscall instruction in
// the executable memory of process pid, its vDSO's first. Executing the
// two bytes makes a system call wherever they sit; a thread run from there
// under PTRACE_SYSCALL stops at the call's exit, before what follows.
func FindSyscallInstruction(pid int) (uint64, error) {
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return 0, err
	}
	defer mem.Close()
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return 0, err
	}
	return syscallInstructionIn(mem, maps)
}

// syscallInstructionIn is FindSyscallInstruction in the process whose
// memory is mem and whose layout is maps.
func syscallInstructionIn(mem io.ReaderAt, maps []procfs.Mapping) (uint64, error) {
	search := func(start, end uint64) (uint64, bool) {
		buf := make([]byte, min(end-start, 4<<20))
		n, _ := mem.ReadAt(buf, int64(start))
		if i := bytes.Index(buf[:n], []byte(syscallInstruction)); i >= 0 {
			return start + uint64(i), true
		}
		return 0, false
	}
	maps = slices.Clone(maps)
	slices.SortStableFunc(maps, func(a, b procfs.Mapping) int {
		switch {
		case a.Kind == b.Kind || (a.Kind != procfs.KindVdso && b.Kind != procfs.KindVdso):
			return 0
		case a.Kind == procfs.KindVdso:
			return -1
		default:
			return 1
		}
	})
	for _, m := range maps {
		// The vsyscall page traps any instruction but its entry points.
		if m.Prot&procfs.ProtExec == 0 || m.Kind == procfs.KindVsyscall {
			continue
		}
		if addr, ok := search(m.Start, m.End); ok {
			return addr, nil
		}
	}
	return 0, errors.New("no syscall instruction found in its executable memory")
}

// MapPage maps one private read-write-execute page in the tracee, at hint
// exactly (MAP_FIXED_NOREPLACE) unless hint is 0, writes a syscall
// instruction at its start and runs every later call from it. The rest of
// the page is scratch memory (ScratchAddr, ScratchSize).
func (r *Remote) MapPage(hint uint64) (uint64, error) {
	if r.done {
		return 0, ErrDone
	}
	if r.page != 0 {
		return 0, fmt.Errorf("%w at %#x", ErrPageMapped, r.page)
	}
	flags := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS)
	if hint != 0 {
		flags |= unix.MAP_FIXED_NOREPLACE
	}
	const noFd = math.MaxUint64 // -1
	before := r.known.Maps
	if before == nil && hint == 0 {
		before, _ = procfs.ReadMaps(r.t.Tid)
	}
	addr, mayHaveRun, err := r.call(unix.SYS_MMAP, []uint64{hint, r.pageSize, unix.PROT_READ | unix.PROT_WRITE | unix.PROT_EXEC, flags, noFd, 0})
	if err != nil {
		if mayHaveRun {
			// The page may be there, at an address nobody read back:
			// Restore and Finish take it away.
			r.lost = r.findLostPage(hint, before)
		}
		return 0, fmt.Errorf("map page at %#x: %w", hint, err)
	}
	if hint != 0 && addr != hint {
		_, _ = r.Syscall(unix.SYS_MUNMAP, addr, r.pageSize)
		return 0, fmt.Errorf("map page at %#x: kernel chose %#x", hint, addr)
	}
	if err := r.WriteMem(addr, []byte(syscallInstruction)); err != nil {
		_, _ = r.Syscall(unix.SYS_MUNMAP, addr, r.pageSize)
		return 0, fmt.Errorf("map page at %#x: %w", addr, err)
	}
	r.page = addr
	return addr, nil
}

// findLostPage finds the page a MapPage whose mmap may have run mapped:
// at hint, or, chosen by the kernel, a private anonymous rwx page the
// process did not have before (nothing else of it runs meanwhile). It
// returns 0 if there is none.
func (r *Remote) findLostPage(hint uint64, before []procfs.Mapping) uint64 {
	if hint != 0 {
		return hint // unmapping it is harmless if the mmap did not run
	}
	if before == nil {
		return 0
	}
	now, err := procfs.ReadMaps(r.t.Tid)
	if err != nil {
		return 0
	}
	covered := func(a uint64) bool {
		for _, m := range before {
			if a >= m.Start && a < m.End {
				return true
			}
		}
		return false
	}
	for _, m := range now {
		if m.Kind != procfs.KindAnon || m.Shared || m.Prot != procfs.ProtRead|procfs.ProtWrite|procfs.ProtExec {
			continue
		}
		for a := m.Start; a < m.End; a += r.pageSize {
			if !covered(a) {
				return a
			}
		}
	}
	return 0
}

// Page returns the address of the mapped page, 0 before MapPage.
func (r *Remote) Page() uint64 { return r.page }

// ScratchAddr returns the start of the page's scratch memory, 0 before
// MapPage.
func (r *Remote) ScratchAddr() uint64 {
	if r.page == 0 {
		return 0
	}
	return r.page + scratchOffset
}

// ScratchSize returns how many bytes of scratch memory follow ScratchAddr.
func (r *Remote) ScratchSize() int {
	if r.page == 0 {
		return 0
	}
	return int(r.pageSize - scratchOffset)
}

// ReadMem reads len(b) bytes of tracee memory at addr through /proc/TID/mem.
func (r *Remote) ReadMem(addr uint64, b []byte) error {
	if r.done {
		return ErrDone
	}
	if addr > math.MaxInt64 {
		return fmt.Errorf("read %d bytes at %#x: address out of range", len(b), addr)
	}
	if _, err := r.mem.ReadAt(b, int64(addr)); err != nil {
		return fmt.Errorf("read %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// WriteMem writes b into tracee memory at addr through /proc/TID/mem. The
// kernel forces the write into private read-only mappings too, copying the
// page on write.
func (r *Remote) WriteMem(addr uint64, b []byte) error {
	if r.done {
		return ErrDone
	}
	if addr > math.MaxInt64 {
		return fmt.Errorf("write %d bytes at %#x: address out of range", len(b), addr)
	}
	if _, err := r.mem.WriteAt(b, int64(addr)); err != nil {
		return fmt.Errorf("write %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// Restore undoes everything for a checkpoint that leaves the process
// running: it unmaps the page, puts back the code bytes, the signal mask
// New found and the registers Regs reports. After Detach the thread
// carries on as if never stopped; a system call it was blocked in is
// restarted by the kernel. Restore tries every step even if one fails.
func (r *Remote) Restore() error {
	if r.done {
		return ErrDone
	}
	if fault.Enabled {
		// Putting back is the undo of every failure: a test fails it
		// on its own or not at all.
		defer fault.Suspend()()
	}
	var errs []error
	if r.page != 0 {
		// Running munmap from the page itself is fine: the thread stops at
		// the syscall exit before it could return into the page.
		if _, err := r.Syscall(unix.SYS_MUNMAP, r.page, r.pageSize); err != nil {
			errs = append(errs, fmt.Errorf("unmap page %#x: %w", r.page, err))
		}
		r.page = 0
	}
	errs = append(errs, r.unmapLost())
	errs = append(errs, r.unpoke())
	errs = append(errs, r.finish(r.saved))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore thread %d: %w", r.t.Tid, err)
	}
	return nil
}

// Finish ends injection into a rebuilt thread: it unmaps the page with the
// very last call (issued from the page, so the thread must not return to
// it), restores the signal mask New found, and sets final as the registers.
// The caller then sets the signal mask it wants and detaches. A final
// orig_rax naming a system call with rax -ERESTARTSYS, -ERESTARTNOINTR or
// -ERESTARTNOHAND makes the kernel re-issue that call at Detach; orig_rax
// -1 resumes at rip as is.
func (r *Remote) Finish(final ptrace.Regs) error {
	if r.done {
		return ErrDone
	}
	var errs []error
	if r.page != 0 {
		if _, err := r.Syscall(unix.SYS_MUNMAP, r.page, r.pageSize); err != nil {
			errs = append(errs, fmt.Errorf("unmap page %#x: %w", r.page, err))
		}
		r.page = 0
	}
	errs = append(errs, r.unmapLost())
	errs = append(errs, r.unpoke())
	errs = append(errs, r.finish(final))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("finish thread %d: %w", r.t.Tid, err)
	}
	return nil
}

// unmapLost unmaps the page a failed MapPage may have left, running the
// call from where calls ran before it.
func (r *Remote) unmapLost() error {
	if r.lost == 0 {
		return nil
	}
	lost := r.lost
	r.lost = 0
	if _, err := r.Syscall(unix.SYS_MUNMAP, lost, r.pageSize); err != nil {
		return fmt.Errorf("unmap page %#x: %w", lost, err)
	}
	return nil
}

// Close lets go of what the Remote holds in this process (the thread's
// memory file) without putting anything back in the thread: for one that
// is being killed. After Restore or Finish it does nothing.
func (r *Remote) Close() error {
	if r.done {
		return nil
	}
	r.done = true
	return r.mem.Close()
}

func (r *Remote) finish(regs ptrace.Regs) error {
	r.done = true
	return errors.Join(r.t.SetSigMask(r.mask), r.t.SetRegs(regs), r.mem.Close())
}

// Call is one system call of a Batch.
type Call struct {
	Nr   int
	Args []uint64 // at most six
}

// batchCallSize bounds the code of one call: up to seven 10-byte moves, a
// syscall instruction and a 10-byte store of the result.
const batchCallSize = 7*10 + 2 + 10

// BatchScratch is how much of the scratch memory (from ScratchAddr) a
// Batch leaves alone: the calls' buffers must lie there, the batch's code
// and results go after it.
func (r *Remote) BatchScratch() int { return r.ScratchSize() / 2 }

// ResultError returns the error a raw system call result stands for (a
// result in -4095..-1, as Batch returns them), or nil.
func ResultError(ret uint64) error {
	if v := int64(ret); v >= -4095 && v < 0 {
		return unix.Errno(-v)
	}
	return nil
}

// maxBatch is how many calls one resume of a Batch takes.
func (r *Remote) maxBatch() int {
	room := r.ScratchSize() - r.BatchScratch() - 1 // the int3
	return max(room/(batchCallSize+8), 1)
}

// Batch runs calls one after another, resuming the thread once for as many
// as the page holds, where Syscall stops it twice per call: each stop is a
// round trip through the scheduler, paid while the process is frozen.
// It returns every call's result as the kernel left it in rax (-errno for
// a failure, see ResultError): the calls run whether an earlier one failed
// or not, so they must not depend on each other. It needs MapPage; the
// code is written into the page after BatchScratch and ends in int3, whose
// SIGTRAP stops the thread. A process that ignores SIGTRAP, or has one
// pending, would have it changed or taken, so there the calls run one by
// one instead.
func (r *Remote) Batch(calls []Call) ([]uint64, error) {
	if r.done {
		return nil, ErrDone
	}
	if r.page == 0 {
		return nil, errors.New("batch without a mapped page")
	}
	if len(calls) == 0 {
		return nil, nil
	}
	if fault.Enabled {
		if failed, errno := injectedFault(calls); failed >= 0 {
			return r.batchAround(calls, failed, errno)
		}
	}
	return r.runBatch(calls)
}

// runBatch is Batch once its calls are checked.
func (r *Remote) runBatch(calls []Call) ([]uint64, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	if !r.trapUsable() {
		return r.oneByOne(calls)
	}
	out := make([]uint64, 0, len(calls))
	for len(calls) > 0 {
		n := min(len(calls), r.maxBatch())
		rets, err := r.batch(calls[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, rets...)
		calls = calls[n:]
	}
	return out, nil
}

// batch is Batch for at most maxBatch calls, with a single resume.
func (r *Remote) batch(calls []Call) ([]uint64, error) {
	codeAt := r.ScratchAddr() + uint64(r.BatchScratch())
	resultsAt := r.page + r.pageSize - 8*uint64(len(calls))
	code := make([]byte, 0, len(calls)*batchCallSize+1)
	movabs := func(prefix, op byte, v uint64) {
		code = append(code, prefix, op)
		code = binary.LittleEndian.AppendUint64(code, v)
	}
	// mov imm64 into rdi, rsi, rdx, r10, r8, r9.
	argOps := [][2]byte{{0x48, 0xbf}, {0x48, 0xbe}, {0x48, 0xba}, {0x49, 0xba}, {0x49, 0xb8}, {0x49, 0xb9}}
	for i, c := range calls {
		if len(c.Args) > len(argOps) {
			return nil, fmt.Errorf("syscall %d with %d arguments, at most 6", c.Nr, len(c.Args))
		}
		movabs(0x48, 0xb8, uint64(c.Nr)) // mov rax, nr
		for k, a := range c.Args {
			movabs(argOps[k][0], argOps[k][1], a)
		}
		code = append(code, syscallInstruction...)
		movabs(0x48, 0xa3, resultsAt+8*uint64(i)) // mov [addr], rax
	}
	code = append(code, 0xcc) // int3
	if err := r.WriteMem(codeAt, code); err != nil {
		return nil, err
	}
	regs := r.saved
	regs.Orig_rax = math.MaxUint64 // no restart of the interrupted call on this resume
	regs.Rip = codeAt
	regs.Eflags &^= flagTrap | flagDirection
	if err := r.t.SetRegs(regs); err != nil {
		return nil, err
	}
	trapBit := uint64(1) << (unix.SIGTRAP - 1)
	if err := r.t.SetSigMask(blockAll &^ trapBit); err != nil {
		return nil, err
	}
	err := r.resumeUntilTrap(codeAt + uint64(len(code)))
	if merr := r.t.SetSigMask(blockAll); merr != nil && err == nil {
		err = merr
	}
	if err != nil {
		return nil, fmt.Errorf("batch of %d calls in thread %d: %w", len(calls), r.t.Tid, err)
	}
	raw := make([]byte, 8*len(calls))
	if err := r.ReadMem(resultsAt, raw); err != nil {
		return nil, err
	}
	out := make([]uint64, len(calls))
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return out, nil
}

// injectedFault returns the index of the call of a Batch that the fault
// injection test fails, and the error it fails with, or -1.
func injectedFault(calls []Call) (int, unix.Errno) {
	failed, errno := -1, unix.EIO
	for i, c := range calls {
		if err := fault.Injected(c.Nr); err != nil && failed < 0 {
			failed = i
			errors.As(err, &errno)
		}
	}
	return failed, errno
}

// batchAround runs a Batch whose call failed is failed with errno: the
// calls before and after it run as the Batch would run them, and the
// failed one has the result the kernel would have given.
func (r *Remote) batchAround(calls []Call, failed int, errno unix.Errno) ([]uint64, error) {
	before, err := r.runBatch(calls[:failed])
	if err != nil {
		return nil, err
	}
	after, err := r.runBatch(calls[failed+1:])
	if err != nil {
		return nil, err
	}
	return append(append(before, -uint64(errno)), after...), nil
}

// oneByOne is Batch through Syscall.
func (r *Remote) oneByOne(calls []Call) ([]uint64, error) {
	out := make([]uint64, len(calls))
	for i, c := range calls {
		if len(c.Args) > 6 {
			return nil, fmt.Errorf("syscall %d with %d arguments, at most 6", c.Nr, len(c.Args))
		}
		v, err := r.run(c.Nr, c.Args)
		if err != nil {
			return nil, fmt.Errorf("syscall %d in thread %d: %w", c.Nr, r.t.Tid, err)
		}
		out[i] = v
	}
	return out, nil
}

// trapUsable says whether the thread may take the batch's SIGTRAP: the
// kernel resets the disposition of a forced signal the process ignores,
// and a SIGTRAP already pending would be taken for the batch's.
func (r *Remote) trapUsable() bool {
	trapBit := uint64(1) << (unix.SIGTRAP - 1)
	if r.known.Signals {
		return (r.known.Ignored|r.known.Pending)&trapBit == 0
	}
	// /proc/TID/status: the thread's own pending signals.
	st, err := procfs.ReadStatus(r.t.Tid)
	if err != nil {
		return false
	}
	return (st.SigIgn|st.SigPnd|st.ShdPnd)&trapBit == 0
}

// resumeUntilTrap resumes the thread until the batch's int3 at end-1 stops
// it, passing on job-control stops as resumeUntil does.
func (r *Remote) resumeUntilTrap(end uint64) error {
	sig := 0
	for {
		if err := r.t.Cont(sig); err != nil {
			return err
		}
		sig = 0
		ws, err := r.t.Wait()
		if err != nil {
			return err
		}
		switch ptrace.KindOf(ws) {
		case ptrace.SignalDeliveryStop:
			switch s := ws.StopSignal(); s {
			case unix.SIGTRAP:
				regs, err := r.t.Regs()
				if err != nil {
					return err
				}
				if regs.Rip != end {
					return fmt.Errorf("SIGTRAP at %#x, not at the batch's end %#x: sent from outside meanwhile", regs.Rip, end)
				}
				// Not resumed with it: the signal is discarded.
				return nil
			case unix.SIGSTOP:
				sig = int(unix.SIGSTOP)
			default:
				return &SignalError{Signal: s}
			}
		case ptrace.InterruptStop, ptrace.GroupStop, ptrace.EventStop:
		default:
			return &ptrace.UnexpectedStopError{Tid: r.t.Tid, Status: ws}
		}
	}
}

package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxXStateSize bounds the NT_X86_XSTATE buffer; the largest layouts (AMX)
// are about 11 KiB.
const maxXStateSize = 1 << 20

// XState returns the thread's extended FPU state (NT_X86_XSTATE) in the
// standard (non-compacted) XSAVE layout, exactly as long as the kernel's
// buffer (2432 bytes with AVX-512).
func (t *Tracee) XState() ([]byte, error) {
	if err := t.onTracer(); err != nil {
		return nil, err
	}
	for size := 4096; size <= maxXStateSize; size *= 2 {
		buf := make([]byte, size)
		n, err := t.getRegset(unix.NT_X86_XSTATE, unsafe.Pointer(&buf[0]), uintptr(len(buf)))
		if err != nil {
			return nil, fmt.Errorf("get xstate of thread %d: %w", t.Tid, err)
		}
		// The kernel truncates to the buffer, so a full buffer may be a
		// truncated one.
		if int(n) < size {
			return buf[:n], nil
		}
	}
	return nil, fmt.Errorf("get xstate of thread %d: larger than %d bytes", t.Tid, maxXStateSize)
}

// SetXState writes the extended FPU state. The kernel only accepts a buffer
// of exactly the size XState returns on this machine.
func (t *Tracee) SetXState(buf []byte) error {
	if err := t.onTracer(); err != nil {
		return err
	}
	if len(buf) == 0 {
		return fmt.Errorf("set xstate of thread %d: empty buffer", t.Tid)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if _, err := ptrace(unix.PTRACE_SETREGSET, t.Tid, unix.NT_X86_XSTATE, uintptr(unsafe.Pointer(&iov))); err != nil {
		return fmt.Errorf("set xstate of thread %d (%d bytes): %w", t.Tid, len(buf), err)
	}
	return nil
}

// XStateLayout identifies the XSAVE layout of an NT_X86_XSTATE buffer, so
// that an image records it and a restart can refuse a machine whose layout
// differs.
type XStateLayout struct {
	// XCR0 is the set of user state components the kernel enables.
	XCR0 uint64
	// Size is the buffer size in bytes.
	Size int
}

// ErrXStateShort means a buffer is too short to hold the legacy area and
// the software-reserved bytes.
var ErrXStateShort = errors.New("xstate buffer shorter than its legacy area")

// ParseXStateLayout reads the layout from a buffer returned by XState. For
// ptrace the kernel fills the software-reserved bytes of the legacy area
// (offset 464) with u64 words whose first is XCR0; this is not the
// struct _fpx_sw_bytes that signal frames carry there.
func ParseXStateLayout(buf []byte) (XStateLayout, error) {
	const swReserved = 464
	if len(buf) < swReserved+8 {
		return XStateLayout{}, fmt.Errorf("%w: %d bytes", ErrXStateShort, len(buf))
	}
	return XStateLayout{
		XCR0: binary.LittleEndian.Uint64(buf[swReserved:]),
		Size: len(buf),
	}, nil
}

// Siginfo is a raw kernel siginfo_t (128 bytes on x86_64), kept whole so it
// can be queued again unchanged.
type Siginfo [128]byte

// Signo returns si_signo.
func (s *Siginfo) Signo() int { return int(int32(binary.LittleEndian.Uint32(s[0:]))) }

// Code returns si_code (SI_USER, SI_QUEUE, SI_TKILL, ...).
func (s *Siginfo) Code() int { return int(int32(binary.LittleEndian.Uint32(s[8:]))) }

// Pid returns si_pid, meaningful for signals sent by a process.
func (s *Siginfo) Pid() int { return int(int32(binary.LittleEndian.Uint32(s[16:]))) }

// Value returns si_value (sival_int / sival_ptr) of a queued signal.
func (s *Siginfo) Value() uint64 { return binary.LittleEndian.Uint64(s[24:]) }

// PendingSignals returns the signals queued for the thread, oldest first
// (PTRACE_PEEKSIGINFO). With shared set it returns the process-wide queue
// instead of the thread's own.
func (t *Tracee) PendingSignals(shared bool) ([]Siginfo, error) {
	if err := t.onTracer(); err != nil {
		return nil, err
	}
	// struct ptrace_peeksiginfo_args
	type peekArgs struct {
		Off   uint64
		Flags uint32
		Nr    int32
	}
	var flags uint32
	if shared {
		flags = unix.PTRACE_PEEKSIGINFO_SHARED
	}
	var (
		all   []Siginfo
		batch [32]Siginfo
	)
	for {
		args := peekArgs{Off: uint64(len(all)), Flags: flags, Nr: int32(len(batch))}
		n, err := ptrace(unix.PTRACE_PEEKSIGINFO, t.Tid, uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&batch[0])))
		if err != nil {
			return nil, fmt.Errorf("peek pending signals of thread %d: %w", t.Tid, err)
		}
		if n == 0 {
			return all, nil
		}
		all = append(all, batch[:n]...)
	}
}

// RseqConfig is the thread's rseq registration.
type RseqConfig struct {
	// Address of the struct rseq area, 0 if none is registered.
	Address   uint64
	Size      uint32
	Signature uint32
	Flags     uint32
}

// Rseq returns the rseq registration (PTRACE_GET_RSEQ_CONFIGURATION).
func (t *Tracee) Rseq() (RseqConfig, error) {
	if err := t.onTracer(); err != nil {
		return RseqConfig{}, err
	}
	// struct ptrace_rseq_configuration
	var raw struct {
		Pointer   uint64
		Size      uint32
		Signature uint32
		Flags     uint32
		_         uint32
	}
	if _, err := ptrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, t.Tid, unsafe.Sizeof(raw), uintptr(unsafe.Pointer(&raw))); err != nil {
		return RseqConfig{}, fmt.Errorf("get rseq configuration of thread %d: %w", t.Tid, err)
	}
	return RseqConfig{Address: raw.Pointer, Size: raw.Size, Signature: raw.Signature, Flags: raw.Flags}, nil
}

// SyscallOp says where in a system call the thread is stopped.
type SyscallOp uint8

const (
	SyscallNone    SyscallOp = unix.PTRACE_SYSCALL_INFO_NONE
	SyscallEntry   SyscallOp = unix.PTRACE_SYSCALL_INFO_ENTRY
	SyscallExit    SyscallOp = unix.PTRACE_SYSCALL_INFO_EXIT
	SyscallSeccomp SyscallOp = unix.PTRACE_SYSCALL_INFO_SECCOMP
)

func (op SyscallOp) String() string {
	switch op {
	case SyscallNone:
		return "none"
	case SyscallEntry:
		return "entry"
	case SyscallExit:
		return "exit"
	case SyscallSeccomp:
		return "seccomp"
	}
	return fmt.Sprintf("SyscallOp(%d)", uint8(op))
}

// SyscallInfo is what PTRACE_GET_SYSCALL_INFO reports.
type SyscallInfo struct {
	Op                 SyscallOp
	Arch               uint32
	InstructionPointer uint64
	StackPointer       uint64
	// Nr and Args are set at entry and seccomp stops.
	Nr   uint64
	Args [6]uint64
	// ReturnValue and IsError are set at exit stops.
	ReturnValue int64
	IsError     bool
}

// SyscallInfo tells whether the thread is at a syscall entry or exit stop
// and with which number, arguments or result.
func (t *Tracee) SyscallInfo() (SyscallInfo, error) {
	if err := t.onTracer(); err != nil {
		return SyscallInfo{}, err
	}
	// struct ptrace_syscall_info is 88 bytes; extra room keeps a future,
	// longer struct from being cut mid-field.
	var buf [128]byte
	n, err := ptrace(unix.PTRACE_GET_SYSCALL_INFO, t.Tid, uintptr(len(buf)), uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return SyscallInfo{}, fmt.Errorf("get syscall info of thread %d: %w", t.Tid, err)
	}
	le := binary.LittleEndian
	info := SyscallInfo{
		Op:                 SyscallOp(buf[0]),
		Arch:               le.Uint32(buf[4:]),
		InstructionPointer: le.Uint64(buf[8:]),
		StackPointer:       le.Uint64(buf[16:]),
	}
	const union = 24
	switch info.Op {
	case SyscallEntry, SyscallSeccomp:
		if n < union+56 {
			return info, fmt.Errorf("get syscall info of thread %d: %d bytes for an entry stop", t.Tid, n)
		}
		info.Nr = le.Uint64(buf[union:])
		for i := range info.Args {
			info.Args[i] = le.Uint64(buf[union+8+8*i:])
		}
	case SyscallExit:
		if n < union+9 {
			return info, fmt.Errorf("get syscall info of thread %d: %d bytes for an exit stop", t.Tid, n)
		}
		info.ReturnValue = int64(le.Uint64(buf[union:]))
		info.IsError = buf[union+8] != 0
	}
	return info, nil
}

// SeccompFilter reads the index-th seccomp filter of the thread (0 is the
// most recently installed) as raw struct sock_filter instructions (8 bytes
// each), with PTRACE_SECCOMP_GET_FILTER. It reports ENOENT past the last
// one.
func (t *Tracee) SeccompFilter(index int) ([]byte, error) {
	if err := t.onTracer(); err != nil {
		return nil, err
	}
	n, err := ptrace(unix.PTRACE_SECCOMP_GET_FILTER, t.Tid, uintptr(index), 0)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter %d of thread %d: %w", index, t.Tid, err)
	}
	buf := make([]byte, 8*n)
	if n > 0 {
		if _, err := ptrace(unix.PTRACE_SECCOMP_GET_FILTER, t.Tid, uintptr(index), uintptr(unsafe.Pointer(&buf[0]))); err != nil {
			return nil, fmt.Errorf("seccomp filter %d of thread %d: %w", index, t.Tid, err)
		}
	}
	return buf, nil
}

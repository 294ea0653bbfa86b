// Package ptrace controls one thread of another process through ptrace(2):
// it seizes and stops the thread without disturbing its signals, reads and
// writes the per-thread state a checkpoint needs (registers, extended FPU
// state, signal mask, queued signals, rseq registration, syscall position),
// and resumes it step by step so that other packages can inject system calls.
// The kernel accepts ptrace requests for a tracee only from the OS thread that
// seized it, so callers lock their goroutine to its OS thread with
// runtime.LockOSThread before Seize and make every later call from it.
package ptrace

// Package sys holds the thin Linux system-call wrappers the checkpoint engine
// needs beyond golang.org/x/sys/unix (pidfd, process_vm_readv/writev with
// partial-transfer handling, kcmp, tee/splice, pipe sizing, a
// non-destructive pipe peek, and threads that enter a network namespace)
// and FD, a file descriptor with a single owner.
// Every wrapper retries EINTR and reports failures as *os.SyscallError so
// callers can test them with errors.Is against unix.Errno values.
package sys

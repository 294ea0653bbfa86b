// Package preserve gives file descriptors a "preserve on restart" flag that
// works like FD_CLOEXEC: a process marks the fds that must keep their numbers
// when crsub restores it (through [Fcntl] with [FD_PRESERVE], or [Set]), the
// mark belongs to the open file at that number and silently lapses when the
// number is closed or reused, and [Environ]/[FromEnviron] hand the marked fds
// across exec the way systemd's LISTEN_FDS does. The restart engine reads the
// honored marks with [List].
package preserve

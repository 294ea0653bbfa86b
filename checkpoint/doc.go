// Package checkpoint writes an image of a running Linux process: it freezes
// the process with ptrace, collects its state from /proc and from system
// calls run inside it, streams the records to an io.Writer, and then kills
// the process or lets it run on. A checkpoint that fails leaves the process
// running exactly as before. The kernel has no checkpoint system call; this
// package is the userspace driver that stands in for one.
package checkpoint

// Package restart rebuilds processes from a checkpoint image. It creates
// each task with its original pid, takes it over with ptrace, rebuilds its
// address space, files and signal state with system calls run inside it,
// restores its registers, and only then lets it run. The phases (plan,
// create tasks, rebuild memory, files, signals, registers, release) read top
// to bottom in Restart; a failure anywhere kills every task the restart
// created, so no half-restored process is ever left running.
package restart

// Package restart rebuilds processes from a checkpoint image. It creates
// each task with its original pid, takes it over with ptrace, rebuilds its
// address space, files and signal state with system calls run inside it,
// restores its registers, and only then lets it run.
//
// The phases read top to bottom in run (restart.go):
//
//   - plan: check the image's header and read the task tree, first;
//   - create the root task; from here on a failure kills every task;
//   - rebuild, record by record as the image streams: each process is
//     forked by its parent when its record arrives (tree.go), then its
//     memory (memory.go) and files (fds.go) are rebuilt inside it;
//   - check that every substitute and preserved fd asked for matched;
//   - zombies, process groups and controlling terminals (tree.go);
//   - finish each task (process.go): memory protections, leftover fds and
//     locks, process state, signals, seccomp, threads, timers, registers;
//   - release, children first.
//
// Hooks (Options.TasksCreated, Options.BeforeRelease) run between them. A
// failure anywhere kills every task the restart created, so no
// half-restored process is ever left running.
package restart

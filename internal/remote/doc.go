// Package remote runs system calls inside a thread stopped by package ptrace,
// as if the thread had issued them itself: it points the registers at a
// syscall instruction, drives the call through its ptrace entry and exit
// stops, and reads back the result. The first calls borrow the code at the
// thread's instruction pointer; MapPage then gives the tracee a private page
// to run from that doubles as scratch memory. Restore leaves a checkpointed
// thread exactly as it was found, while Finish hands a rebuilt thread its
// final registers after unmapping the page it ran from. All signals except
// SIGKILL and SIGSTOP stay blocked in the tracee while calls are injected,
// so no handler can run on the borrowed state; signals sent meanwhile wait
// in the queue.
package remote

// Package stub creates the empty process a restart turns into the restored
// one: a child of the caller with exactly the pid the image needs, made with
// clone3 and set_tid, that runs no Go code after the clone and just waits,
// all signals blocked, to be seized. It starts as a copy of the calling Go
// process (memory, open fds, signal handlers); the restart engine replaces
// all of that by injecting system calls.
package stub

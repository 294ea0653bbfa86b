package ptrace

import "runtime"

// OnTracerThread runs fn on an OS thread of its own and returns its
// results. Every ptrace request for a tracee must come from the thread
// that seized it, so a whole checkpoint or restart runs inside fn. The
// thread is never unlocked: it exits with fn's goroutine, so no other
// goroutine ever inherits a thread that is some process's tracer.
func OnTracerThread[T any](fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		v, err := fn()
		done <- result{v, err}
	}()
	r := <-done
	return r.v, r.err
}

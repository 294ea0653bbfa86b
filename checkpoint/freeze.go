package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
)

// Frozen is a process tree stopped by Freeze. ptrace ties every stopped
// thread to the OS thread that stopped it, so a Frozen keeps one OS thread
// of its own until Thaw.
type Frozen struct {
	// Pids lists the frozen processes, root first.
	Pids    []int
	do      chan func()
	done    bool
	session *session
}

// Freeze stops every thread of the process tree rooted at pid, race-free
// (a process is stopped before its children are listed), without
// checkpointing it: for launchers that want to pause a tree. Call Thaw to
// let it go; a Frozen that is never thawed keeps the tree stopped until
// this process exits.
func Freeze(pid int) (*Frozen, error) {
	f := &Frozen{do: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		s := &session{root: pid, log: slog.New(slog.DiscardHandler), stats: &Stats{}}
		if err := s.freezeTree(); err != nil {
			s.thaw()
			ready <- fmt.Errorf("freezing pid %d: %w", pid, err)
			return
		}
		for _, p := range s.procs {
			f.Pids = append(f.Pids, p.pid)
		}
		f.session = s
		ready <- nil
		for fn := range f.do {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return f, nil
}

// Thaw lets every thread of the frozen tree run again, exactly where it
// was (a system call it was blocked in goes on).
func (f *Frozen) Thaw() error {
	if f.done {
		return errors.New("tree already thawed")
	}
	f.done = true
	errc := make(chan error, 1)
	f.do <- func() { errc <- f.session.thaw() }
	close(f.do)
	return <-errc
}

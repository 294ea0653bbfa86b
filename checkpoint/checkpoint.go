package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
)

// Checkpoint writes an image of process pid to w. The process is frozen
// while its state is copied; afterwards it is killed, or, with
// opts.LeaveRunning, let go exactly as it was. On error the process is left
// running.
func Checkpoint(ctx context.Context, pid int, w io.Writer, opts Options) (*Stats, error) {
	type result struct {
		stats *Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		// Every ptrace request must come from the thread that seized the
		// tracee. The thread is never unlocked: it exits with the
		// goroutine, so no other goroutine inherits a tracer thread.
		runtime.LockOSThread()
		s, err := run(ctx, pid, w, opts)
		done <- result{s, err}
	}()
	r := <-done
	if r.err != nil {
		return r.stats, fmt.Errorf("checkpoint of pid %d: %w", pid, r.err)
	}
	return r.stats, nil
}

// session is one checkpoint in progress.
type session struct {
	pid   int
	opts  Options
	log   *slog.Logger
	stats *Stats
	// tracees are the process's threads, main thread first.
	tracees []*ptrace.Tracee
	frozen  time.Time
}

func run(ctx context.Context, pid int, out io.Writer, opts Options) (*Stats, error) {
	start := time.Now()
	s := &session{pid: pid, opts: opts, log: opts.Log, stats: &Stats{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if pid <= 0 {
		return nil, fmt.Errorf("invalid pid %d", pid)
	}
	if pid == os.Getpid() {
		return nil, errors.New("crsub cannot checkpoint itself")
	}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	if stat.State == 'Z' {
		return nil, fmt.Errorf("pid %d is a zombie", pid)
	}
	if err := refuseUnsupportedTree(pid); err != nil {
		return nil, err
	}
	mem, err := newMemoryDumper(pid, s.stats)
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	bw := bufio.NewWriterSize(out, 1<<20)

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.frozen = time.Now()
	committed := false
	defer func() {
		if !committed {
			// Whatever failed, the process goes on as if nothing happened.
			s.thaw()
		}
	}()
	if err := s.freeze(); err != nil {
		return nil, fmt.Errorf("freezing: %w", err)
	}

	state, err := s.collect()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cw, err := ckpt.NewWriter(bw, state.header)
	if err != nil {
		return nil, err
	}
	if err := s.write(cw, state, mem); err != nil {
		_ = cw.Abort(err)
		_ = bw.Flush()
		return nil, err
	}
	if err := cw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing image: %w", err)
	}
	s.stats.Bytes = cw.Offset()
	if opts.Commit != nil {
		if err := opts.Commit(); err != nil {
			return nil, err
		}
	}
	committed = true
	if opts.LeaveRunning {
		err = s.thaw()
	} else {
		// The image is complete and committed: only now may the
		// original go.
		// A stopped tracee dies of SIGKILL without being let go.
		err = unix.Kill(pid, unix.SIGKILL)
	}
	s.stats.Frozen = time.Since(s.frozen)
	s.stats.Total = time.Since(start)
	if err != nil {
		return s.stats, fmt.Errorf("releasing pid %d: %w", pid, err)
	}
	s.log.Info("checkpoint complete", "pid", pid, "bytes", s.stats.Bytes, "pages", s.stats.PagesStored, "frozen", s.stats.Frozen)
	return s.stats, nil
}

// freeze seizes every thread. Threads created meanwhile are caught by
// listing the threads again until a pass finds no new one: a seized thread
// cannot create more.
func (s *session) freeze() error {
	seized := map[int]bool{}
	for {
		tids, err := procfs.Tids(s.pid)
		if err != nil {
			return err
		}
		added := false
		for _, tid := range tids {
			if seized[tid] {
				continue
			}
			t, err := ptrace.Seize(tid)
			if err != nil {
				if _, serr := os.Stat(fmt.Sprintf("/proc/%d/task/%d", s.pid, tid)); serr != nil {
					continue // the thread exited meanwhile
				}
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			seized[tid] = true
			added = true
			if tid == s.pid {
				s.tracees = append([]*ptrace.Tracee{t}, s.tracees...)
			} else {
				s.tracees = append(s.tracees, t)
			}
		}
		if !added {
			break
		}
	}
	if len(s.tracees) == 0 || s.tracees[0].Tid != s.pid {
		return fmt.Errorf("the main thread of pid %d is gone", s.pid)
	}
	return nil
}

// thaw lets every seized thread go.
func (s *session) thaw() error {
	var first error
	for _, t := range s.tracees {
		if err := t.Detach(); err != nil && first == nil {
			first = err
			s.log.Warn("releasing a thread", "tid", t.Tid, "err", err)
		}
	}
	return first
}

// refuseUnsupportedTree fails early for processes with children: trees
// are a feature of their own.
func refuseUnsupportedTree(pid int) error {
	kids, err := procfs.Children(pid, pid)
	if err != nil {
		return err
	}
	if len(kids) > 0 {
		return fmt.Errorf("pid %d has child processes %v; process trees are not supported yet", pid, kids)
	}
	return nil
}

func (s *session) write(cw *ckpt.Writer, st *processState, mem *memoryDumper) error {
	procRef := cw.NewObjref()
	if err := cw.Write(ckpt.TypeTree, 0, nil, &st.tree); err != nil {
		return err
	}
	if err := cw.Write(ckpt.TypeProcess, procRef, nil, &st.process); err != nil {
		return err
	}
	for i := range st.threads {
		if err := cw.Write(ckpt.TypeThread, 0, []ckpt.Objref{procRef}, &st.threads[i]); err != nil {
			return err
		}
	}
	if err := cw.Write(ckpt.TypeSignals, 0, []ckpt.Objref{procRef}, &st.signals); err != nil {
		return err
	}
	mmRef := cw.NewObjref()
	if err := cw.Write(ckpt.TypeMM, mmRef, []ckpt.Objref{procRef}, &st.mm); err != nil {
		return err
	}
	for i := range st.maps {
		if err := mem.dump(cw, mmRef, &st.maps[i]); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	return s.dumpFiles(cw, procRef)
}

package substitute

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/crsub/crsub/preserve"
	"golang.org/x/sys/unix"
)

// InstallOptions configures [Install].
type InstallOptions struct {
	// Image describes, per target fd, the checkpointed fd being replaced.
	// Targets without an entry use Default.
	Image   map[int]OpenOptions
	Default OpenOptions
	// StopTimeout is how long a rollback or Undo lets an exec command drain
	// its pipe after the write end is closed before killing it.
	StopTimeout time.Duration
}

// DefaultInstallOptions uses [DefaultOpenOptions] for every target and a 2 s
// StopTimeout.
func DefaultInstallOptions() InstallOptions {
	return InstallOptions{Default: DefaultOpenOptions(), StopTimeout: 2 * time.Second}
}

// Placed is what Install put at one fd number.
type Placed struct {
	FD int
	Opened
}

// Installed is the result of a successful [Install].
type Installed struct {
	mu     sync.Mutex
	placed []Placed
	res    []*opened // for each placed entry: exec process and socket file
	stop   time.Duration
}

// Install opens every source in m and puts each at its target fd number,
// replacing whatever the number held, then marks the targets with
// preserve.Set so the restart engine keeps them. It is all or nothing: if
// any source fails to open or any step fails, every source opened so far is
// closed (exec commands stopped, created unix sockets removed), every target
// gets back the fd it held before, and the error (an *[OpenError] naming the
// target and spec, or a *[SpecError]) is returned.
//
// Placement is collision-safe: a target may hold an fd the caller owns or
// the fd another source happened to be opened at. All sources are opened
// first (so fd:N sees the launcher's fds as they were), moved above the
// highest target, and only then dup3'd into place with the image's
// FD_CLOEXEC. Each target gets its own open file description, even if two
// targets have the same spec. Install must not race with other goroutines
// opening or closing fds at target numbers.
//
// A preserve mark holds a duplicate of its file (see preserve.Set), so a
// caller that closes a target itself, say an exec pipe whose command must
// see EOF, clears the target's mark first.
func Install(m map[int]Source, opts InstallOptions) (*Installed, error) {
	targets := make([]int, 0, len(m))
	for t := range m {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	in := &Installed{stop: opts.StopTimeout}
	if len(targets) == 0 {
		return in, nil
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil, fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	for _, t := range targets {
		if t < 0 || uint64(t) >= rl.Cur-1 {
			// -1 leaves room above the highest target for the moves.
			return nil, fmt.Errorf("target fd %d is outside 0..%d (RLIMIT_NOFILE %d)", t, rl.Cur-2, rl.Cur)
		}
		if reason := m[t].check(); reason != "" {
			return nil, &SpecError{Spec: m[t].String(), Reason: reason}
		}
	}
	above := targets[len(targets)-1] + 1

	var res []*opened
	fail := func(t int, err error) (*Installed, error) {
		for _, o := range res {
			o.release(opts.StopTimeout)
		}
		if t >= 0 {
			err = &OpenError{Target: t, Spec: m[t].String(), Err: err}
		}
		return nil, err
	}
	for _, t := range targets {
		o, err := m[t].open(imageFor(opts, t))
		if err != nil {
			return fail(t, err)
		}
		res = append(res, o)
	}
	for i, o := range res {
		if o.fd >= above {
			continue
		}
		nfd, err := unix.FcntlInt(uintptr(o.fd), unix.F_DUPFD_CLOEXEC, above)
		if err != nil {
			return fail(targets[i], fmt.Errorf("moving fd %d above %d: %w", o.fd, above, err))
		}
		unix.Close(o.fd)
		o.fd = nfd
	}

	// Keep what the targets hold now, to put it back if placement fails.
	type kept struct{ fd, cloexec int }
	saved := make(map[int]kept)
	wasMarked := make(map[int]bool)
	closeSaved := func() {
		for _, k := range saved {
			unix.Close(k.fd)
		}
	}
	for _, t := range targets {
		fl, err := unix.FcntlInt(uintptr(t), unix.F_GETFD, 0)
		if errors.Is(err, unix.EBADF) {
			continue
		}
		var nfd int
		if err == nil {
			nfd, err = unix.FcntlInt(uintptr(t), unix.F_DUPFD_CLOEXEC, above)
		}
		if err != nil {
			closeSaved()
			return fail(t, fmt.Errorf("saving the fd it holds: %w", err))
		}
		saved[t] = kept{nfd, fl & unix.FD_CLOEXEC}
		wasMarked[t] = preserve.IsSet(t)
	}
	var placed []int
	rollback := func() {
		for _, t := range slices.Backward(placed) {
			preserve.Clear(t)
			if k, ok := saved[t]; ok {
				unix.Dup3(k.fd, t, map[int]int{0: 0, unix.FD_CLOEXEC: unix.O_CLOEXEC}[k.cloexec])
				if wasMarked[t] {
					preserve.Set(t)
				}
			} else {
				unix.Close(t)
			}
		}
		closeSaved()
	}
	for i, t := range targets {
		flags := 0
		if res[i].info.CloseOnExec {
			flags = unix.O_CLOEXEC
		}
		if err := unix.Dup3(res[i].fd, t, flags); err != nil {
			rollback()
			return fail(t, fmt.Errorf("dup3 to %d: %w", t, err))
		}
		placed = append(placed, t)
	}
	for _, t := range targets {
		if err := preserve.Set(t); err != nil {
			rollback()
			return fail(t, err)
		}
	}
	closeSaved()
	for i, o := range res {
		unix.Close(o.fd)
		o.fd = -1 // the target holds it now; Undo closes it there
		in.placed = append(in.placed, Placed{FD: targets[i], Opened: o.info})
	}
	in.res = res
	return in, nil
}

func imageFor(opts InstallOptions, target int) OpenOptions {
	if o, ok := opts.Image[target]; ok {
		return o
	}
	return opts.Default
}

// Placed reports what was placed at each target, in increasing fd order.
func (in *Installed) Placed() []Placed {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.placed)
}

// Undo takes back an Install that the caller decided not to use: it closes
// every target that still holds what Install put there (as its preserve mark
// shows, so an fd closed or replaced since, or whose mark was cleared, is
// left alone), clears the marks, stops exec commands (they see EOF and get
// StopTimeout to drain before being killed) and removes unix-listen socket
// files. The fds Install replaced are not brought back. Undo is idempotent.
func (in *Installed) Undo() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []error
	for _, p := range in.placed {
		if !preserve.IsSet(p.FD) {
			continue
		}
		preserve.Clear(p.FD)
		if err := unix.Close(p.FD); err != nil {
			errs = append(errs, fmt.Errorf("closing fd %d (substitute %s): %w", p.FD, p.Spec, err))
		}
	}
	for _, o := range in.res {
		o.release(in.stop)
	}
	in.placed, in.res = nil, nil
	return errors.Join(errs...)
}

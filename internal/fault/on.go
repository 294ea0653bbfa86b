//go:build faultinject

package fault

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Enabled says whether this build has fault injection (the faultinject
// tag). Code that only prepares a hook's arguments tests it, so that the
// preparation compiles away too.
const Enabled = true

// Site is a kind of place a fault can be injected at.
type Site string

const (
	// SiteInjected is a system call injected into a task (internal/remote).
	SiteInjected Site = "injected"
	// SiteCall is a system call crsub makes itself, through a thin wrapper.
	SiteCall Site = "call"
	// SiteWrite is a write of the image file.
	SiteWrite Site = "write"
)

// Fault is one failure to inject: the Nth event of Site in Phase fails
// with Err, once.
type Fault struct {
	Site Site
	// Phase is the phase the events are counted in; "" counts them
	// across every phase.
	Phase string
	N     int // from 1
	Err   error
	// Short makes a failed write write half its bytes first; with Err nil
	// it then returns no error, as a writer that breaks io.Writer's
	// contract would.
	Short bool
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s #%d", f.Site, f.N)
	if f.Phase != "" {
		s += " of " + f.Phase
	}
	if f.Short {
		s += ", short"
	}
	return fmt.Sprintf("%s: %v", s, f.Err)
}

// Point is where events are counted: a site in a phase.
type Point struct {
	Site  Site
	Phase string
}

// Hit is the event a fault fired at.
type Hit struct {
	Point
	N     int    // its number in Point
	What  string // the call or write it failed
	Fault int    // which of the faults armed fired
}

// state is the plan and the counts; hooks run on the tracer thread and
// the spooling reader's goroutine alike.
var state struct {
	sync.Mutex
	phase     string
	suspended int
	counts    map[Point]int
	armed     []Fault
	fired     []Hit
}

// Reset disarms and forgets every count and the phase.
func Reset() {
	state.Lock()
	defer state.Unlock()
	state.phase, state.suspended, state.counts, state.armed, state.fired = "", 0, map[Point]int{}, nil, nil
}

// Arm resets, then plans faults, each firing on its own (a test arms a
// backstop behind the fault it means, so that an operation that works
// around that one, or whose events it miscounted, fails all the same).
func Arm(faults ...Fault) {
	Reset()
	state.Lock()
	defer state.Unlock()
	state.armed = faults
}

// Fired returns the first event an armed fault fired at, or nil.
func Fired() *Hit {
	state.Lock()
	defer state.Unlock()
	if len(state.fired) == 0 {
		return nil
	}
	h := state.fired[0]
	return &h
}

// Hits returns every event an armed fault fired at, in order.
func Hits() []Hit {
	state.Lock()
	defer state.Unlock()
	return slices.Clone(state.fired)
}

// Counts returns how many events each point saw since the last Reset or
// Arm (Phase "" totals a site over its phases).
func Counts() map[Point]int {
	state.Lock()
	defer state.Unlock()
	return maps.Clone(state.counts)
}

// Phase names what the driver does from now on; the hooks count in it.
func Phase(name string) {
	state.Lock()
	defer state.Unlock()
	state.phase = name
}

// Suspend stops counting and failing until the returned function is
// called: for the paths that put a process back as it was, which a test
// fails separately or not at all.
func Suspend() (resume func()) {
	state.Lock()
	state.suspended++
	state.Unlock()
	return func() {
		state.Lock()
		state.suspended--
		state.Unlock()
	}
}

// event counts one event at site and returns the fault to inject there,
// if it is the armed one's.
func event(site Site, what func() string) *Fault {
	state.Lock()
	defer state.Unlock()
	if state.suspended > 0 {
		return nil
	}
	if state.counts == nil {
		state.counts = map[Point]int{}
	}
	here := Point{site, state.phase}
	state.counts[here]++
	all := Point{Site: site}
	if here != all {
		state.counts[all]++
	}
	for i, f := range state.armed {
		at := here
		if f.Phase == "" {
			at = all
		}
		if f.Site != site || at.Phase != f.Phase || state.counts[at] != f.N {
			continue
		}
		state.fired = append(state.fired, Hit{Point: here, N: state.counts[here], What: what(), Fault: i})
		return &state.armed[i]
	}
	return nil
}

// Injected is called before system call nr is injected into a task; an
// error is the call's result instead.
func Injected(nr int) error {
	if f := event(SiteInjected, func() string { return fmt.Sprintf("injected syscall %d", nr) }); f != nil {
		return f.Err
	}
	return nil
}

// Call is called before crsub makes system call name itself; an error is
// the call's result instead.
func Call(name string) error {
	if f := event(SiteCall, func() string { return name }); f != nil {
		return f.Err
	}
	return nil
}

// Write is called before n bytes of the image are written: it returns how
// many of them to write, and the error to return after them.
func Write(n int) (int, error) {
	f := event(SiteWrite, func() string { return fmt.Sprintf("write of %d bytes", n) })
	switch {
	case f == nil:
		return n, nil
	case f.Short:
		return n / 2, f.Err
	}
	return 0, f.Err
}

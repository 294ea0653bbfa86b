package restart

import (
	"log/slog"
	"time"
)

// Options controls a restart. Start from DefaultOptions.
type Options struct {
	// Log receives progress and warnings; nil means silent.
	Log *slog.Logger
	// Preserve lists fds of the calling process that the restored process
	// keeps at the same numbers, instead of what the image holds there
	// (see package preserve).
	Preserve []int
	// PidWait bounds how long a restart waits for an original pid still
	// held by a zombie that is about to be reaped.
	PidWait time.Duration
	// TasksCreated, if set, runs once every task exists (stopped, none of
	// its state restored); an error aborts the restart.
	TasksCreated func(pids []int) error
	// BeforeRelease, if set, runs when every task is fully restored, just
	// before they run; an error aborts the restart.
	BeforeRelease func(pids []int) error
}

// DefaultOptions returns the options of a plain restart: silent, no fd
// preserved, up to five seconds of waiting for a pid to be freed.
func DefaultOptions() Options { return Options{PidWait: 5 * time.Second} }

package checkpoint

import (
	"log/slog"
	"time"
)

// Options controls a checkpoint. Start from DefaultOptions.
type Options struct {
	// Log receives progress and warnings; nil means silent.
	Log *slog.Logger
	// LeaveRunning lets the process run on after the checkpoint instead of
	// killing it.
	LeaveRunning bool
	// Parent, if set, is the path of an earlier image of the same tree:
	// only pages whose contents differ from that image's chain are stored,
	// and restart takes the others from it. Record it as an absolute path,
	// or relative to the new image's directory.
	Parent string
	// Progress, if set, is called as memory is copied, with the bytes
	// copied so far and an estimate of the total (which may be exceeded).
	Progress func(done, total int64)
	// Commit, if set, runs once the whole image has been written and before
	// the process is killed: the place to flush, fsync and rename an image
	// file. If it fails, the process is left running and Checkpoint fails.
	Commit func() error
}

// DefaultOptions returns the options of a plain checkpoint: silent, the
// process killed once the image is complete.
func DefaultOptions() Options { return Options{} }

// Stats reports what a checkpoint did and how long the process was frozen.
type Stats struct {
	Frozen      time.Duration // from the first thread stopped to release
	Total       time.Duration
	Bytes       int64  // image size
	PagesStored uint64 // memory pages written
	BytesRead   uint64 // bytes copied out of the process's memory
}

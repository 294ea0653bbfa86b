package checkpoint

import (
	"log/slog"
	"time"

	"github.com/crsub/crsub/internal/files"
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
	// PreCopy, if positive, is how many rounds of copying memory while the
	// process runs come before the freeze: the first round copies all
	// private memory, each later one what was written during the one
	// before, and the frozen phase only what was written since. Pages
	// copied ahead are not copied again into an in-memory image
	// (Snapshot), so its frozen time follows the memory written, not the
	// memory held. Where write tracking is not available the process is
	// copied whole while frozen, and Log says so. The copies are kept in
	// a memory file crsub never maps. With LeaveRunning and Snapshot, the
	// write tracking is lifted in the background after the thaw, paced so
	// as not to stop the process; the Image's Close waits for it. Not
	// combined with Parent yet.
	PreCopy int
	// PreCopyRound, if set, is called after each pre-copy round with the
	// round's number (from 1) and the bytes it copied; the next round, or
	// the freeze, starts when it returns. For progress, or to pace rounds.
	PreCopyRound func(round int, bytes uint64)
	// CopyOnWrite, with LeaveRunning and an in-memory image (Snapshot),
	// forks a copy of each frozen process inside it and reads the
	// private memory from the copy after the thaw: the frozen phase copies
	// page tables, not pages. The process then pays for its first write
	// to each page, and for a moment has a child it did not make (killed
	// and reaped before the checkpoint returns); see cowCopy. Not
	// combined with PreCopy or Parent; where the copy cannot be made, the
	// memory is copied while frozen and Log says so.
	CopyOnWrite bool
	// CgroupRoots says where the cgroups recorded for a hierarchy start,
	// by hierarchy: a controller or name= of a v1 hierarchy ("cpu",
	// "name=systemd"), "unified" for the v2 one, or "" for every
	// hierarchy not named. By default they start at the tasks' own
	// cgroups (and below the root cgroup, none is recorded). The image
	// records them with their owners, modes and settings; a restart makes
	// them again.
	CgroupRoots map[string]string
	// Caller, for a tree that checkpoints itself through a socket to the
	// program calling Checkpoint (CRIU's self-dump: libcriu's criu_dump()
	// without a pid), is that program's end of the socket, by inode. The
	// tree's end is recorded as a socket whose peer is gone with
	// CallerReply queued on it: what the tree reads there after a
	// restart, as if the checkpoint had answered it.
	Caller      uint64
	CallerReply []byte
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
	Frozen time.Duration // from the first thread stopped to release
	Total  time.Duration
	// Prepare is the time before the freeze: preparing memory for an
	// in-memory image, pre-copy rounds. WriteBack is the time after the
	// release: reading a copy-on-write copy, writing an in-memory image
	// out (where the caller counts that in Total).
	Prepare, WriteBack time.Duration
	Bytes              int64  // image size
	PagesStored        uint64 // memory pages written
	BytesRead          uint64 // bytes copied out of the process's memory while it was frozen
	// PreCopyRounds and PreCopyBytes tell what the pre-copy rounds did
	// while the process ran; PagesPreCopied is how many stored pages came
	// from them instead of being read while frozen. PreCopySetup is how
	// long setting up write tracking took, the tree being frozen for part
	// of it (to create each process's userfaultfd).
	PreCopyRounds  int
	PreCopyBytes   uint64
	PagesPreCopied uint64
	PreCopySetup   time.Duration
	// PreCopy tells each round: a round that copied about as many pages
	// as were written meanwhile did not pay. PreCopyStopped, if set, says
	// why the rounds stopped before the number asked for.
	PreCopy        []PreCopyRound
	PreCopyStopped string
	// PagesCopyOnWrite is how many stored pages were read from a
	// copy-on-write copy after the thaw (Options.CopyOnWrite).
	PagesCopyOnWrite uint64
	// PageStore says where the pages read while frozen went when not
	// simply into the image as it streamed: for an in-memory image
	// (Snapshot) "memory file" (never mapped by crsub, written out inside
	// the kernel), or "touched memory" and why no memory file could be
	// made; for a tree left running, "image file, room allocated before
	// the freeze".
	PageStore string
}

// PreCopyRound is what one pre-copy round did.
type PreCopyRound struct {
	Took time.Duration
	// PagesCopied are the pages the round copied (the first round: all
	// of them; each later one: those written during the round before).
	PagesCopied uint64
	// PagesWritten are the pages written while the round ran, as the
	// next round (or, after the last, the frozen phase) found them.
	PagesWritten uint64
}

// AcceptQueueError is the error of a checkpoint that found connections
// waiting in a listener's accept queue, and still found them after letting
// the process run a while to accept them: they cannot be restored.
type AcceptQueueError = files.AcceptQueueError

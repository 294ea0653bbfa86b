package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/internal/atomicfile"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/internal/fault"
)

func runCheckpoint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("checkpoint", "--pid PID -o FILE|- [--leave-running]", stderr)
	pid := fs.Int("pid", 0, "process to checkpoint")
	output := fs.StringP("output", "o", "", "image file to write, or - for standard output")
	leave := fs.Bool("leave-running", false, "let the process run on after the checkpoint instead of killing it. With -o FILE on tmpfs the process is frozen while its state is written into the file, into room allocated for its pages before the freeze; nothing is held in memory. Elsewhere (a disk, -, a device), and with --pre-copy, it is frozen only while its state is copied into memory, and the image is written from there after it runs again, so crsub holds about as much memory as the process's private memory until then, its pages in a memory file (shmem, not crsub's RSS; --stats says where they were held); where that much is not available, the image is written while the process is frozen")
	stats := fs.String("stats", "", "report, on standard error, the time of each phase (prepare, frozen, write-back) and of each pre-copy round with the pages it copied and the pages written meanwhile: \"text\" or \"json\"")
	parent := fs.String("parent", "", "store only the pages that changed since this earlier image of the same process (restart then needs it too)")
	preCopy := fs.Int("pre-copy", 0, "copy memory while the process runs, ROUNDS times, before freezing it to copy only what was written since (--pre-copy alone: 2 rounds); the copies are held in a memory file (shmem) about the size of the private memory until the image is written")
	fs.Lookup("pre-copy").NoOptDefVal = "2"
	cow := fs.Bool("copy-on-write", false, "with --leave-running: fork a copy of the process while it is frozen and read its memory from the copy after the thaw (frozen time follows the page tables, not the memory); with -o FILE the copy's pages go straight into the file, no image is held in memory")
	cgroupRoots := fs.StringArray("cgroup-root", nil, "record the cgroups of a hierarchy from `[HIERARCHY:]/PATH` down, empty ones too, rather than from the tasks' own cgroups (below a hierarchy's root cgroup nothing is recorded unless asked); HIERARCHY a controller or name= of a v1 hierarchy (cpu, name=systemd) or unified, none for every hierarchy not named (repeatable)")
	quiet := fs.BoolP("quiet", "q", false, "no progress line on a terminal")
	verbose := fs.BoolP("verbose", "v", false, "log progress")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	roots, err := parseCgroupRoots(*cgroupRoots)
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case *pid <= 0:
		return usageError{"needs --pid PID"}
	case *output == "":
		return usageError{"needs -o FILE (or -o - for standard output)"}
	case *preCopy < 0:
		return usageError{fmt.Sprintf("--pre-copy takes a number of rounds, not %d", *preCopy)}
	case *preCopy > 0 && *parent != "":
		return usageError{"--pre-copy and --parent cannot be combined yet"}
	case *cow && !*leave:
		return usageError{"--copy-on-write needs --leave-running"}
	case *cow && (*preCopy > 0 || *parent != ""):
		return usageError{"--copy-on-write cannot be combined with --pre-copy or --parent"}
	case *stats != "" && *stats != "text" && *stats != "json":
		return usageError{fmt.Sprintf("--stats takes text or json, not %q", *stats)}
	}
	start := time.Now()
	// An interrupted checkpoint must still put the process back as it
	// was: the signal cancels it instead of killing crsub mid-way.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A reader of -o - that goes away must be an error the checkpoint
	// handles (letting the process go), not a signal that kills crsub.
	signal.Ignore(syscall.SIGPIPE)
	opts := checkpoint.DefaultOptions()
	opts.Log = newLogger(stderr, *verbose)
	opts.LeaveRunning = *leave
	opts.PreCopy = *preCopy
	opts.CopyOnWrite = *cow
	opts.CgroupRoots = roots
	if *parent != "" {
		abs, err := filepath.Abs(*parent)
		if err != nil {
			return err
		}
		opts.Parent = abs
	}
	bar := newProgress(stderr, "checkpoint: copied", *quiet)
	defer bar.done()
	opts.Progress = bar.update

	var out io.Writer = os.Stdout
	var file *atomicfile.File
	if *output != "-" {
		dev, err := openInPlace(*output)
		if err != nil {
			return err
		}
		if dev != nil {
			// A device or FIFO is written where it is; nothing to rename.
			defer dev.Close()
			out = dev
		} else {
			// Complete and on disk before it has a name, and gone without a
			// trace if crsub dies first; the process is killed only after.
			f, err := atomicfile.Create(*output)
			if err != nil {
				return err
			}
			defer f.Abort()
			out, file = f, f
			opts.Commit = f.Commit
		}
	}
	var st *checkpoint.Stats
	var img *checkpoint.Image
	var memErr *checkpoint.MemoryError
	switch {
	case *cow && file != nil:
		// The copy's pages go straight into their places in the file
		// after the thaw: no image held in memory.
		var err error
		if st, err = checkpoint.CheckpointFile(ctx, *pid, file, opts); err != nil {
			return err
		}
		countUntilNow(st, start)
	case *leave && (file == nil || opts.PreCopy > 0 || !inMemory(file.File)):
		// The process runs on, so freeze it only to copy its state into
		// memory, and write the image after it was let go: a disk's
		// speed does not lengthen the freeze. A file in memory (tmpfs)
		// is written in place instead, into room allocated before the
		// freeze: as short a freeze as a copy into memory, and the pages
		// written once. A pre-copy's copies are in memory already.
		var err error
		img, err = checkpoint.Snapshot(ctx, *pid, opts)
		if errors.As(err, &memErr) && !opts.CopyOnWrite {
			// Written while the tree is frozen instead: a longer freeze,
			// but no room needed.
			fmt.Fprintf(stderr, "crsub checkpoint: %v: writing the image while the process is frozen\n", err)
		} else if err != nil {
			return err
		}
	}
	switch {
	case st != nil:
	case img != nil:
		defer img.Close()
		if _, err := img.WriteTo(out); err != nil {
			return fmt.Errorf("writing the image: %w", err)
		}
		if opts.Commit != nil {
			if err := opts.Commit(); err != nil {
				return err
			}
		}
		// What the checkpoint left running (a pre-copy lifting its write
		// protection) is part of its time.
		img.Close()
		countUntilNow(&img.Stats, start)
		st = &img.Stats
	default:
		// The process is killed only once the image is safely written,
		// so it stays frozen until then. One left running goes on
		// whatever becomes of the image: it is let go first, and the
		// image synced and named after (on a disk, the sync can take
		// longer than the checkpoint).
		commit := opts.Commit
		if opts.LeaveRunning {
			opts.Commit = nil
		}
		var err error
		if st, err = checkpoint.Checkpoint(ctx, *pid, out, opts); err != nil {
			return err
		}
		if opts.LeaveRunning && commit != nil {
			fault.Phase("committing")
			if err := commit(); err != nil {
				return err
			}
			countUntilNow(st, start)
		}
	}
	switch *stats {
	case "text":
		writeStatsText(stderr, st)
	case "json":
		return json.NewEncoder(stderr).Encode(statsJSON(st))
	}
	return nil
}

// writeStatsText writes --stats text: the phases, then what the pre-copy
// rounds and a copy-on-write copy did.
func writeStatsText(w io.Writer, st *checkpoint.Stats) {
	fmt.Fprintf(w, "frozen %v, total %v, image %d bytes, %d pages\n", st.Frozen, st.Total, st.Bytes, st.PagesStored)
	fmt.Fprintf(w, "phases: prepare %v, frozen %v, write-back %v\n", st.Prepare, st.Frozen, st.WriteBack)
	if st.PreCopyRounds > 0 {
		fmt.Fprintf(w, "pre-copy: %d rounds, %d bytes copied while running, %d pages taken from them, %d bytes read while frozen\n",
			st.PreCopyRounds, st.PreCopyBytes, st.PagesPreCopied, st.BytesRead)
		for i, r := range st.PreCopy {
			fmt.Fprintf(w, "pre-copy round %d: %v, %d pages copied, %d pages written meanwhile\n", i+1, r.Took, r.PagesCopied, r.PagesWritten)
		}
		if st.PreCopyStopped != "" {
			fmt.Fprintf(w, "pre-copy stopped early: %s\n", st.PreCopyStopped)
		}
	}
	if st.PagesCopyOnWrite > 0 {
		fmt.Fprintf(w, "copy-on-write: %d pages read from the forked copy after the thaw\n", st.PagesCopyOnWrite)
	}
	if st.PageStore != "" {
		fmt.Fprintf(w, "pages held in: %s\n", st.PageStore)
	}
}

// statsJSON is --stats json's object.
func statsJSON(st *checkpoint.Stats) map[string]any {
	rounds := []map[string]any{}
	for _, r := range st.PreCopy {
		rounds = append(rounds, map[string]any{"took_ns": r.Took.Nanoseconds(), "pages_copied": r.PagesCopied, "pages_written": r.PagesWritten})
	}
	return map[string]any{
		"frozen_ns": st.Frozen.Nanoseconds(), "total_ns": st.Total.Nanoseconds(),
		"prepare_ns": st.Prepare.Nanoseconds(), "write_back_ns": st.WriteBack.Nanoseconds(),
		"bytes": st.Bytes, "pages": st.PagesStored, "frozen_read_bytes": st.BytesRead,
		"pre_copy_rounds": st.PreCopyRounds, "pre_copy_bytes": st.PreCopyBytes, "pages_pre_copied": st.PagesPreCopied,
		"pre_copy": rounds, "pre_copy_stopped": st.PreCopyStopped,
		"pages_copy_on_write": st.PagesCopyOnWrite, "page_store": st.PageStore,
	}
}

// parseCgroupRoots parses --cgroup-root values by hierarchy.
func parseCgroupRoots(specs []string) (map[string]string, error) {
	roots := map[string]string{}
	for _, spec := range specs {
		h, path, err := cgroup.ParseRoot(spec)
		if err != nil {
			return nil, usageError{"--cgroup-root " + err.Error()}
		}
		if _, dup := roots[h]; dup {
			return nil, usageError{fmt.Sprintf("--cgroup-root given twice for hierarchy %q", h)}
		}
		roots[h] = path
	}
	return roots, nil
}

// countUntilNow makes st's whole time run from start to now, what crsub did
// after the checkpoint returned (writing an image held in memory, naming
// the file) counted in its write-back.
func countUntilNow(st *checkpoint.Stats, start time.Time) {
	st.Total = time.Since(start)
	st.WriteBack = st.Total - st.Prepare - st.Frozen
}

// inMemory says whether f is on a filesystem that keeps its files in
// memory (tmpfs, ramfs): written there while the process is frozen, an image
// costs what a copy into crsub's memory would.
func inMemory(f *os.File) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return false
	}
	return fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC
}

package checkpoint

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/sys"
)

// Checkpoint writes an image of the process tree rooted at pid to w: the
// process, its threads, and all its descendants. The tree is frozen while
// its state is copied; afterwards it is killed, or, with
// opts.LeaveRunning, let go exactly as it was. On error, or when ctx is
// cancelled, it is left running.
//
// With opts.LeaveRunning, into an empty regular file (an *os.File), room
// for about the tree's private memory is allocated before the freeze, and
// what the image did not use given back after: the freeze then costs about
// what copying the tree into memory would, and the image is written once.
// A tree that is killed gains nothing from the shorter freeze: the room
// moves work out of it, not away (its allocation cost 60-150 ms more
// before the freeze than it saved during it), and is not made.
//
// If pid is a child of the calling process, nothing else in the process
// may wait for it (os/exec's Cmd.Wait, wait4) during the checkpoint: a
// wait by any thread takes the ptrace stops the checkpoint waits for, and
// the checkpoint then hangs.
func Checkpoint(ctx context.Context, pid int, w io.Writer, opts Options) (*Stats, error) {
	return ptrace.OnTracerThread(func() (*Stats, error) { return run(ctx, pid, w, opts) })
}

// session is one checkpoint in progress.
type session struct {
	root   int
	opts   Options
	log    *slog.Logger
	stats  *Stats
	frozen time.Time
	// procs are the live processes of the tree, parents before children.
	procs []*proc
	// zombies are dead children not yet reaped by their parents.
	zombies []ckpt.TreeProcess
	files   *files.DumpContext
	// early is smaps of the tree's processes, read before the freeze.
	early *earlyMadvise
	// descriptions index the open file descriptions written so far, and
	// copies those examined so far, by the fd whose copy stands for them.
	descriptions descriptions
	copies       descriptions
	// ownNamespaces are crsub's, by kind; namespaces those of the tree
	// that are not.
	ownNamespaces map[string]uint64
	namespaces    *namespaces
	// cgroups are the cgroups of the tree's hierarchies to make again,
	// read through hierarchies.
	cgroups     []ckpt.Cgroups
	hierarchies cgroup.Hierarchies
}

// proc is one frozen process of the tree.
type proc struct {
	pid, ppid int
	// stopped says the process was in a job-control stop before it was
	// seized.
	stopped bool
	// tracees are the process's threads, main thread first.
	tracees []*ptrace.Tracee
	state   *processState
	fds     []*files.Fd
	// copies are the copies of fds this process holds: of the open file
	// descriptions first seen in it. Its other fds share earlier copies.
	copies []*os.File
	// cow is the process's copy-on-write copy (Options.CopyOnWrite).
	cow *cowCopy
	// fdTable is the process whose fd table this one shares (its
	// parent's, cloned with CLONE_FILES): that process's fds are its
	// fds. nil: a table of its own.
	fdTable *proc
}

// run is the checkpoint, in its order: what can be refused is refused and
// what can be prepared is prepared while the tree runs; the tree is frozen
// and collected, the image written and committed, and only then is the
// tree let go or killed. Until the commit, any failure lets the tree go on
// as it was.
func run(ctx context.Context, pid int, out io.Writer, opts Options) (*Stats, error) {
	start := time.Now()
	s := &session{root: pid, opts: opts, log: opts.Log, stats: &Stats{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := checkTarget(pid); err != nil {
		return nil, err
	}
	encoders := prepareEncoding()
	tracepoint := holdTracepoint()
	defer tracepoint.Close()
	fault.Phase("preparing")
	var err error
	if s.ownNamespaces, err = ownNamespaces(); err != nil {
		return nil, err
	}
	if err := checkNamespaces(pid, s.ownNamespaces); err != nil {
		return nil, err
	}
	mem := s.dumperFor(out)
	if opts.PreCopy > 0 && opts.Parent != "" {
		return nil, errors.New("pre-copy and a parent image cannot be combined yet")
	}
	var parentSize int64
	var parentCreated time.Time
	if opts.Parent != "" {
		if parentSize, parentCreated, err = mem.openParent(opts.Parent); err != nil {
			return nil, err
		}
		defer mem.parent.Close()
	}
	// An image kept in memory takes writes as they come; anything else
	// gets them in large pieces.
	dst, flush := out, func() error { return nil }
	if _, ok := out.(ckpt.Deferrer); !ok {
		bw := throughWriter{bufio.NewWriterSize(out, 1<<20)}
		dst, flush = bw, bw.Flush
	}
	resolver, canDefer := out.(interface{ resolve() error })
	if opts.CopyOnWrite {
		if err := checkCopyOnWrite(opts, canDefer); err != nil {
			return nil, err
		}
		mem.zeroPFN = zeroPagePFN()
	}
	pc := s.tryPreCopy(out)
	if pc != nil {
		defer func() {
			// Lifting the protection takes a while, paced not to stop
			// the tree: an image kept in memory is written meanwhile.
			if later, ok := out.(interface{ closeLater(func()) }); ok && s.opts.LeaveRunning && !pc.ownFile {
				later.closeLater(pc.Close)
				return
			}
			pc.Close()
		}()
		if err := s.preCopyRounds(ctx, pc, mem); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	committed := false
	defer func() {
		if fault.Enabled {
			defer fault.Suspend()()
		}
		if !committed {
			// Whatever failed, the tree goes on as if nothing happened.
			s.thaw()
			if err := s.discardCopies(); err != nil {
				s.log.Warn("discarding copy-on-write copies", "err", err)
			}
		}
		for _, p := range s.procs {
			p.closeFds()
		}
		if s.files != nil {
			s.files.Close()
		}
	}()
	s.early = prepareFreeze(pid, tracepoint)
	// The counters that tell whether smaps still holds are closed after
	// the tree runs again: letting the last counter on a tracepoint go
	// waits for an RCU grace period (~20 ms here).
	defer s.early.Close()
	// Mounting the cgroup hierarchies and unmounting them take a
	// millisecond or more each: done while the tree runs.
	s.mountCgroups()
	defer s.unmountCgroups()
	<-encoders
	var room *imageRoom
	if opts.LeaveRunning {
		if room, err = makeRoom(out, s.early.privateMemory); err != nil {
			s.log.Debug("no room allocated in the image file before the freeze", "err", err)
		}
		if room != nil {
			s.stats.PageStore = "image file, room allocated before the freeze"
		}
		defer room.trim()
	}
	if err := s.lastPreCopyRound(ctx, pc); err != nil {
		return nil, err
	}
	header, err := s.freezeAndCollect(ctx)
	if err != nil {
		return nil, err
	}
	if opts.CopyOnWrite {
		s.forkCopies()
	}
	if opts.Parent != "" {
		header.Parent, header.ParentSize, header.ParentCreated = opts.Parent, parentSize, parentCreated
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fault.Phase("writing")
	if err := s.writeImage(ctx, dst, flush, header, mem); err != nil {
		return nil, err
	}
	fault.Phase("committing")
	if opts.Commit != nil {
		if err := opts.Commit(); err != nil {
			return nil, err
		}
	}
	committed = true
	fault.Phase("releasing")
	if opts.LeaveRunning {
		err = s.letRun(resolver)
	} else {
		err = s.killTree()
	}
	s.stats.Total = time.Since(start)
	s.stats.Prepare = s.frozen.Sub(start)
	s.stats.WriteBack = s.stats.Total - s.stats.Prepare - s.stats.Frozen
	if err != nil {
		return s.stats, fmt.Errorf("releasing: %w", err)
	}
	s.log.Info("checkpoint complete", "pid", pid, "processes", len(s.procs), "bytes", s.stats.Bytes, "pages", s.stats.PagesStored, "frozen", s.stats.Frozen)
	return s.stats, nil
}

// throughWriter gathers small writes (record headers) and sends a large
// one (a buffer of pages) straight through, after what it gathered: a
// bufio.Writer holding a header would first copy a buffer's worth of the
// pages into itself, a quarter of every 4 MiB copied once more by the
// writer the freeze waits on.
type throughWriter struct{ *bufio.Writer }

func (w throughWriter) Write(p []byte) (int, error) {
	if len(p) >= w.Size() && w.Buffered() > 0 {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	return w.Writer.Write(p)
}

// checkTarget refuses a pid that cannot be checkpointed while nothing has
// been done to it yet, so that there is nothing to undo and the error is
// about the pid, not about a step that failed on it. crsub would freeze
// its own tracing thread; killing the init of a pid namespace kills
// everything in it.
func checkTarget(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	if pid == os.Getpid() {
		return errors.New("crsub cannot checkpoint itself")
	}
	if pid == 1 {
		return errors.New("refusing to checkpoint pid 1, the init of this pid namespace, and everything under it")
	}
	stat, err := procfs.ReadStat(pid)
	if errors.Is(err, os.ErrNotExist) {
		return &NoProcessError{Pid: pid}
	}
	if err != nil {
		return err
	}
	if stat.State == 'Z' {
		if err := leaderGone(pid); err != nil {
			return err
		}
		return fmt.Errorf("pid %d is a zombie", pid)
	}
	return nil
}

// leaderGone returns a *LeaderGoneError if pid, which /proc shows as a
// zombie, has threads that run on: recorded as a zombie, they would be
// lost.
func leaderGone(pid int) error {
	if tids, err := procfs.Tids(pid); err == nil && len(tids) > 1 {
		return &LeaderGoneError{Pid: pid, Threads: len(tids) - 1}
	}
	return nil
}

// dumperFor makes the memory dumper while the tree still runs: its copy
// buffers are sized by what the root holds now (for an in-memory image,
// what the tree held when the image was sized) and touched before the
// freeze, and an in-memory image lends it the page store it prepared, so
// that pages are read straight into the image.
func (s *session) dumperFor(out io.Writer) *memoryDumper {
	var resident int64
	var store *pageStore
	var file *pageFile
	if image, ok := out.(*memoryWriter); ok {
		store, file, resident = image.pages, image.file, image.resident
	}
	if resident == 0 {
		resident = residentEstimate(s.root)
	}
	mem := newMemoryDumper(s.stats, uint64(resident), store, file)
	mem.progress, mem.expect = s.opts.Progress, resident
	// The namespaces are met later, collecting the tree.
	mem.elsewhere = func(pid int, path string, dev, ino uint64) (ckpt.FileIdentity, bool) {
		return s.namespaces.elsewhere(pid, path, dev, ino)
	}
	if streams(out) {
		mem.copyBufs = newBufPool(runtime.NumCPU(), copyPiecePages*os.Getpagesize(), false)
	}
	return mem
}

// openParent opens the image chain at path, for the dumper to store only
// the pages that differ from it, and returns the size and creation time
// the header records so that a restart can tell the chain was not
// replaced since.
func (d *memoryDumper) openParent(path string) (size int64, created time.Time, err error) {
	ix, ph, err := ckpt.OpenChain(path)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("parent image: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		ix.Close()
		return 0, time.Time{}, err
	}
	d.parent, d.pbuf = ix, make([]byte, os.Getpagesize())
	return st.Size(), ph.Created, nil
}

// checkCopyOnWrite refuses what a copy-on-write checkpoint cannot do: its
// pages are read from the copies after the thaw, so the tree must go on
// running, and the image must be one that keeps a place for a payload
// filled in later. The pages read from a copy are neither taken from
// pre-copy rounds nor compared with a parent image.
func checkCopyOnWrite(opts Options, canDefer bool) error {
	switch {
	case !opts.LeaveRunning:
		return errors.New("a copy-on-write checkpoint leaves the process running (LeaveRunning)")
	case !canDefer:
		return errors.New("a copy-on-write checkpoint needs an in-memory image (Snapshot) or a seekable file (CheckpointFile)")
	case opts.PreCopy > 0 || opts.Parent != "":
		return errors.New("copy-on-write cannot be combined with pre-copy or a parent image")
	}
	return nil
}

// tryPreCopy starts tracking the tree's writes when Options.PreCopy asks
// for it, or returns nil. Pre-copy only shortens the freeze: where it
// cannot be set up, the tree is as it was and is checkpointed the ordinary
// way rather than refused. The copies go into out's page file if it keeps
// one (out's payloads are produced after the pre-copy ends).
func (s *session) tryPreCopy(out io.Writer) *preCopy {
	if s.opts.PreCopy <= 0 {
		return nil
	}
	var file *pageFile
	if h, ok := out.(pageFileHolder); ok {
		var err error
		if file, err = h.pagesFile(); err != nil {
			s.log.Warn("pre-copy is not available; the memory is copied while the tree is frozen", "err", err)
			return nil
		}
	}
	pc, err := startPreCopy(s.root, s.log, file)
	if err != nil {
		s.log.Warn("pre-copy is not available; the memory is copied while the tree is frozen", "err", err)
	}
	return pc
}

// preCopyRounds copies the tree's memory while it runs, so that the freeze
// copies only what was written after the last round, and hands the copies
// to the dumper. The last round of several is held back until just before
// the freeze (lastPreCopyRound): what the freeze reads is what the tree
// writes after it, so the preparing between them is better done first
// (a GiB written at 10% per 100 ms: frozen 73-83 ms with the last round
// before the preparing, 23-36 ms after it).
func (s *session) preCopyRounds(ctx context.Context, pc *preCopy, mem *memoryDumper) error {
	for pc.rounds < max(1, s.opts.PreCopy-1) {
		stop, err := s.preCopyRound(ctx, pc)
		if err != nil {
			return err
		}
		if stop {
			break
		}
	}
	pc.prepareFresh()
	pc.guardCategory = mem.guardCategory
	mem.pre = pc
	s.stats.PreCopySetup = pc.setup
	return nil
}

// lastPreCopyRound runs the round preCopyRounds held back, if any.
func (s *session) lastPreCopyRound(ctx context.Context, pc *preCopy) error {
	if pc == nil {
		return nil
	}
	if pc.rounds < s.opts.PreCopy && s.stats.PreCopyStopped == "" {
		if _, err := s.preCopyRound(ctx, pc); err != nil {
			return err
		}
	}
	s.stats.PreCopyRounds, s.stats.PreCopyBytes = pc.rounds, pc.bytes
	s.log.Info("pre-copy done", "rounds", pc.rounds, "bytes", pc.bytes, "last-round-pages", pc.lastRound)
	return nil
}

// preCopyRound runs a pre-copy round and says whether no further one pays.
func (s *session) preCopyRound(ctx context.Context, pc *preCopy) (stop bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	before, start := pc.bytes, time.Now()
	pc.round()
	if k := len(s.stats.PreCopy); k > 0 {
		s.stats.PreCopy[k-1].PagesWritten = pc.lastRound
	}
	s.stats.PreCopy = append(s.stats.PreCopy, PreCopyRound{Took: time.Since(start), PagesCopied: pc.lastRound})
	if s.opts.PreCopyRound != nil {
		s.opts.PreCopyRound(pc.rounds, pc.bytes-before)
	}
	if why := outpaced(s.stats.PreCopy); why != "" && pc.rounds < s.opts.PreCopy {
		s.stats.PreCopyStopped = why
		s.log.Info("pre-copy stopped early", "why", why)
		return true, nil
	}
	return false, nil
}

// outpaced says why no further pre-copy round pays, or "": the last round
// copied no fewer pages than the one before (each copies what was written
// during the one before, so the process writes as fast as the rounds
// copy), or none at all.
func outpaced(rounds []PreCopyRound) string {
	k := len(rounds)
	switch {
	case k > 0 && rounds[k-1].PagesCopied == 0:
		return fmt.Sprintf("round %d found no page written", k)
	case k > 1 && rounds[k-1].PagesCopied >= rounds[k-2].PagesCopied:
		return fmt.Sprintf("round %d copied %d pages, no fewer than round %d: the process writes as fast as the rounds copy", k, rounds[k-1].PagesCopied, k-1)
	}
	return ""
}

// prepareFreeze does, while the tree runs, work the freeze would otherwise
// wait for: a sleeping process's page tables are brought into line (wake),
// and smaps is read, to be used if it still holds once frozen.
func prepareFreeze(root int, tp *tracepointHold) *earlyMadvise {
	pids := listTree(root)
	wake(pids)
	return readMadviseEarly(pids, tp)
}

// prepareEncoding readies, in the background while the tree runs, the
// encoding of the records a checkpoint writes: building a type's encoder
// took 2-3 ms of the frozen phase for a lone process. The channel is
// closed once done.
func prepareEncoding() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ckpt.PrepareEncoding(&ckpt.Header{}, &ckpt.Tree{}, &ckpt.Cgroups{}, &ckpt.Namespace{}, &ckpt.Network{},
			&ckpt.SysVShm{}, &ckpt.SysVSemSet{}, &ckpt.SysVMsgQueue{}, &ckpt.Process{}, &ckpt.Thread{},
			&ckpt.Signals{}, &ckpt.MM{}, &ckpt.VMA{}, &ckpt.Pages{}, &ckpt.Fd{}, &ckpt.File{}, &ckpt.Pipe{},
			&ckpt.FIFO{}, &ckpt.UnixPair{}, &ckpt.UnixQueue{}, &ckpt.EpollWatch{}, &ckpt.Pty{}, &ckpt.Memfd{},
			&ckpt.Ghost{}, &ckpt.MQueue{}, &ckpt.MountFiles{}, &ckpt.Trailer{})
	}()
	return done
}

// writeImage writes the image of the collected tree to dst. A write that
// fails is recorded in the image (Abort) and what was buffered is still
// flushed, so that a reader reports the cause rather than a bare
// truncation.
func (s *session) writeImage(ctx context.Context, dst io.Writer, flush func() error, header *ckpt.Header, mem *memoryDumper) error {
	cw, err := ckpt.NewWriter(dst, *header)
	if err != nil {
		return err
	}
	if err := s.write(ctx, cw, mem); err != nil {
		_ = cw.Abort(err)
		_ = flush()
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return fmt.Errorf("writing image: %w", err)
	}
	s.stats.Bytes = cw.Offset()
	return nil
}

// letRun lets the committed tree go on exactly as it was. The pages of
// the copy-on-write copies go into the image only now, while the tree
// runs: the freeze paid for copying page tables, not pages. The copies go
// once read.
func (s *session) letRun(resolver interface{ resolve() error }) error {
	err := s.thaw()
	s.stats.Frozen = time.Since(s.frozen)
	if s.hasCopies() {
		if rerr := resolver.resolve(); rerr != nil && err == nil {
			err = rerr
		}
		if derr := s.discardCopies(); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}

// killTree ends the originals once the image is complete and committed,
// and not before: until then a failure must leave them running. A stopped
// tracee dies of SIGKILL without being let go, so nothing of the tree
// runs past the state the image holds.
func (s *session) killTree() error {
	// A network namespace of the tree's own is held still whole, as CRIU
	// does: it may outlive the tree (bound to a file, or with other
	// processes in it) and be joined at restart (--netns). Connections in
	// crsub's are held one by one since the freeze (LockConnections).
	s.namespaces.lockNetworks(s.log)
	var err error
	for _, p := range s.procs {
		if kerr := unix.Kill(p.pid, unix.SIGKILL); kerr != nil && err == nil {
			err = &ProcessError{Pid: p.pid, Err: os.NewSyscallError("kill", kerr)}
		}
	}
	s.stats.Frozen = time.Since(s.frozen)
	s.releaseDead()
	return err
}

// releaseDead hands the killed threads over to their parents: as their
// tracer, crsub is told of each death first, and the zombie waits for
// crsub until it is told or its tracer thread ends. The init of a pid
// namespace does not end before every process of its namespace is gone,
// nor its parent see it end: all are waited for together, each pass
// taking whichever has died. crsub's own children are left for their
// waiter (see Checkpoint). A thread that takes long to die is not waited
// for past a few seconds.
func (s *session) releaseDead() {
	var pending []int
	for _, p := range s.procs {
		for _, t := range p.tracees {
			if t.Tid == p.pid && p.ppid == 0 && isChild(p.pid) {
				continue
			}
			pending = append(pending, t.Tid)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		still := pending[:0]
		for _, tid := range pending {
			var ws unix.WaitStatus
			got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR || (err == nil && !(got == tid && (ws.Exited() || ws.Signaled()))) {
				still = append(still, tid)
			}
		}
		if pending = still; len(pending) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// isChild says whether pid is a child of this process.
func isChild(pid int) bool {
	st, err := procfs.ReadStat(pid)
	return err == nil && st.PPid == os.Getpid()
}

// acceptAttempts bounds how often freezeAndCollect lets the tree run to
// accept waiting connections or finish a vfork: 10 ms, then twice as long
// each time, about 1.3 s of running in all.
const acceptAttempts = 8

// freezeAndCollect freezes the tree and collects its state. Connections
// waiting in a listener's accept queue cannot be restored, and a server
// usually accepts them at once; a vfork child shares its parent's memory
// until it execs, a moment later. The tree is let go for a moment, and
// frozen again, before the checkpoint gives up on them.
func (s *session) freezeAndCollect(ctx context.Context) (*ckpt.Header, error) {
	wait, ran := 10*time.Millisecond, time.Duration(0)
	for attempt := 1; ; attempt++ {
		s.frozen = time.Now()
		fault.Phase("freezing")
		err := s.freezeTree()
		var header *ckpt.Header
		if err == nil {
			fault.Phase("collecting")
			header, err = s.collect()
		} else if !errors.As(err, new(*VforkError)) {
			return nil, fmt.Errorf("freezing: %w", err)
		}
		var queued *files.AcceptQueueError
		var vfork *VforkError
		switch {
		case errors.As(err, &queued):
			s.log.Info("letting the process accept waiting connections", "pid", queued.Pid, "fd", queued.Fd, "waiting", queued.Waiting)
		case errors.As(err, &vfork):
			s.log.Info("letting a vfork child exec", "pid", vfork.Pid, "parent", vfork.Parent)
		default:
			return header, err
		}
		if attempt == acceptAttempts {
			return nil, fmt.Errorf("%w (still so after letting the tree run for %v)", err, ran)
		}
		if err := s.release(); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		ran += wait
		wait *= 2
	}
}

// release lets the tree go and forgets what was collected, to start over.
func (s *session) release() error {
	err := s.thaw()
	for _, p := range s.procs {
		p.closeFds()
	}
	if s.files != nil {
		s.files.Close()
	}
	s.procs, s.zombies, s.files, s.copies = nil, nil, nil, nil
	return err
}

// freezeTree freezes the root, then each child it finds, breadth first. A
// process is frozen before its children are listed, so no process can be
// forked behind the walk's back.
func (s *session) freezeTree() error {
	queue := []*proc{{pid: s.root}}
	seen := map[int]bool{s.root: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if err := p.freeze(); err != nil {
			// A child may end between being listed and being seized (a
			// shell's short-lived commands): it is then a zombie, or gone.
			if p.pid != s.root {
				if z, gone := endedChild(p); gone {
					continue
				} else if z != nil {
					s.zombies = append(s.zombies, *z)
					continue
				}
			}
			return &ProcessError{Pid: p.pid, Err: err}
		}
		s.procs = append(s.procs, p)
		var kids []int
		for _, t := range p.tracees {
			k, err := procfs.Children(p.pid, t.Tid)
			if err != nil {
				return &ProcessError{Pid: p.pid, Err: err}
			}
			kids = append(kids, k...)
		}
		sort.Ints(kids)
		for _, k := range kids {
			if seen[k] {
				continue
			}
			if k == os.Getpid() {
				return fmt.Errorf("the tree of pid %d contains this crsub process (pid %d); checkpoint a process that is not an ancestor of crsub", s.root, k)
			}
			seen[k] = true
			st, err := procfs.ReadStat(k)
			if err != nil {
				return fmt.Errorf("child %d of pid %d: %w", k, p.pid, err)
			}
			if st.State == 'Z' {
				if err := leaderGone(k); err != nil {
					return err
				}
				z := zombie(k, p.pid, st)
				// In a pid namespace of its own, a restart gives it its
				// pid there too.
				if status, err := procfs.ReadStatus(k); err == nil {
					z.NsPid = treeRecord(k, &st, &status).NsPid
				}
				s.zombies = append(s.zombies, z)
				continue
			}
			queue = append(queue, &proc{pid: k, ppid: p.pid})
		}
	}
	return nil
}

// zombie is the tree record of pid, a child of ppid that has ended and
// is not reaped yet.
func zombie(pid, ppid int, st procfs.Stat) ckpt.TreeProcess {
	tp := ckpt.TreeProcess{Pid: pid, Ppid: ppid, Pgid: st.Pgrp, Sid: st.Session, Comm: st.Comm, Zombie: true, ExitCode: int(st.ExitCode)}
	// In a pid namespace of its own, it is made again with its pid there.
	if status, err := procfs.ReadStatus(pid); err == nil && len(status.NSpid) > 1 {
		tp.NsPid = status.NSpid[len(status.NSpid)-1]
		if m := len(status.NSpgid); m > 1 {
			tp.NsPgid = status.NSpgid[m-1]
		}
	}
	return tp
}

// endedChild tells, for a child that could not be frozen, whether it has
// ended since it was listed: it is a zombie (returned), or gone. An exit
// takes a moment to finish, so it is given 200 ms.
func endedChild(p *proc) (z *ckpt.TreeProcess, gone bool) {
	for range 20 {
		st, err := procfs.ReadStat(p.pid)
		if errors.Is(err, os.ErrNotExist) {
			return nil, true
		}
		if err == nil && st.State == 'Z' {
			zp := zombie(p.pid, p.ppid, st)
			return &zp, false
		}
		// Running, in the kernel or dying, it may be on its way out; in
		// any other state it is alive.
		if err == nil && !strings.ContainsRune("RDXx", rune(st.State)) {
			return nil, false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, false
}

// freeze seizes every thread (eachThread: a seized thread cannot create
// more).
func (p *proc) freeze() (err error) {
	if st, err := procfs.ReadStat(p.pid); err == nil && st.State == 'T' {
		p.stopped = true
	}
	defer func() {
		if err != nil {
			// The threads seized so far go back as they were.
			for _, t := range p.tracees {
				_ = t.Detach()
			}
			p.tracees = nil
		}
	}()
	err = eachThread(p.pid, func(tid int) (bool, error) {
		// A thread waiting for a vfork child to exec does not stop
		// until then: it is left alone, and the caller retries.
		if child := vforkChild(p.pid, tid); child != 0 {
			return false, &VforkError{Pid: child, Parent: p.pid}
		}
		// Seccomp filters are suspended while traced: the system calls
		// run inside the process must not be refused or kill it.
		t, err := ptrace.Seize(tid, ptrace.SuspendSeccomp)
		if err != nil {
			if threadGone(p.pid, tid) {
				return false, nil
			}
			if st, serr := procfs.ReadTaskStatus(p.pid, tid); serr == nil && st.TracerPid != 0 {
				traced := &TracedError{Tid: tid, Tracer: st.TracerPid, Err: err}
				if ts, serr := procfs.ReadStat(st.TracerPid); serr == nil {
					traced.TracerComm = ts.Comm
				}
				return false, traced
			}
			return false, fmt.Errorf("thread %d: %w", tid, err)
		}
		if tid == p.pid {
			p.tracees = append([]*ptrace.Tracee{t}, p.tracees...)
		} else {
			p.tracees = append(p.tracees, t)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if len(p.tracees) == 0 || p.tracees[0].Tid != p.pid {
		return fmt.Errorf("the main thread is gone")
	}
	return nil
}

// eachThread calls take for each thread of pid it has not taken yet,
// listing the threads again until a pass finds no new one: threads created
// meanwhile are caught as long as what take did to their creator stops
// them or follows them (a ptrace stop, a counter inherited). take returns
// false for a thread it leaves out (one that has ended).
func eachThread(pid int, take func(tid int) (bool, error)) error {
	taken := map[int]bool{}
	for {
		tids, err := procfs.Tids(pid)
		if err != nil {
			return err
		}
		added := false
		for _, tid := range tids {
			if taken[tid] {
				continue
			}
			ok, err := take(tid)
			if err != nil {
				return err
			}
			if ok {
				taken[tid], added = true, true
			}
		}
		if !added {
			return nil
		}
	}
}

// threadGone says whether thread tid of pid has ended.
func threadGone(pid, tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err != nil
}

// thaw lets every seized thread of the tree go, after undoing what the
// checkpoint did to them: their files (a TCP socket in repair mode leaves
// it) and the EINTR the freeze left in some waits.
func (s *session) thaw() error {
	if fault.Enabled {
		// Putting back is the undo of every failure: a test fails it
		// on its own or not at all.
		defer fault.Suspend()()
	}
	if s.files != nil {
		for _, undo := range s.files.OnRelease {
			undo()
		}
		s.files.OnRelease = nil
	}
	var first error
	for _, p := range s.procs {
		for _, t := range p.tracees {
			// A wait the freeze ended with EINTR (epoll_wait, semop)
			// waits on instead, as it would have without the freeze.
			if regs, err := t.Regs(); err == nil && ptrace.KeepWaiting(&regs) {
				if err := t.SetRegs(regs); err != nil {
					s.log.Warn("a thread the freeze took out of its wait may see EINTR", "pid", p.pid, "tid", t.Tid, "err", err)
				}
			}
			if err := t.Detach(); err != nil && first == nil {
				first = err
				s.log.Warn("releasing a thread", "pid", p.pid, "tid", t.Tid, "err", err)
			}
		}
	}
	return first
}

// controllingTerminal describes the controlling terminal of a session
// leader if it is a pty the tree holds, or a virtual console, serial line
// or the console the leader holds an fd on, which restart opens again by
// path, or a pty slave whose master is outside the tree the leader holds
// an fd on (a container's console), which a restart that makes it a new
// pty gives back (another terminal is someone else's: its fds are
// external, and restart gives the session none).
func (s *session) controllingTerminal(p *proc) *ckpt.Ctty {
	st, err := procfs.ReadStat(p.pid)
	if err != nil || st.Session != p.pid || st.TtyNr == 0 {
		return nil
	}
	rdev := files.TtyDevice(st.TtyNr)
	pty := s.files.InternalPtySlave(rdev)
	_, slave := files.PtySlaveIndex(rdev)
	external := !pty && slave
	if !pty && !external && !files.KernelTerminal(rdev) {
		return nil
	}
	fds := p.fds
	if p.fdTable != nil {
		fds = p.fdTable.fds
	}
	for _, fd := range fds {
		if fd.Stat.Mode&unix.S_IFMT == unix.S_IFCHR && fd.Stat.Rdev == rdev {
			return &ckpt.Ctty{Fd: fd.Num, Pgrp: st.Tpgid, External: external}
		}
	}
	if !pty {
		return nil
	}
	// It holds none: restart opens the slave for the moment it takes.
	index, _ := files.PtySlaveIndex(rdev)
	return &ckpt.Ctty{Fd: -1, Pgrp: st.Tpgid, Pty: index}
}

// VforkError reports a child sharing its parent's memory: a vfork (or
// posix_spawn) child that has not called exec yet.
type VforkError struct{ Pid, Parent int }

func (e *VforkError) Error() string {
	return fmt.Sprintf("pid %d shares its memory with its parent %d: a vfork child before its exec", e.Pid, e.Parent)
}

// sysvSegment describes the System V shared memory segment with id (a
// mapping's inode number is its segment's id).
func sysvSegment(id uint64) (*ckpt.SysVShm, error) {
	segs, err := procfs.ReadSysVShm()
	if err != nil {
		return nil, err
	}
	for _, g := range segs {
		if uint64(g.ID) == id {
			const shmDest = 0o1000
			return &ckpt.SysVShm{ID: g.ID, Key: g.Key, Mode: g.Perms & 0o777, UID: g.UID, GID: g.GID, Removed: g.Perms&shmDest != 0}, nil
		}
	}
	return nil, fmt.Errorf("segment %d is not in /proc/sysvipc/shm", id)
}

// vforkChild returns the child of thread tid that shares its memory (a
// vfork child that has not exec'd yet), or 0.
func vforkChild(pid, tid int) int {
	kids, err := procfs.Children(pid, tid)
	if err != nil {
		return 0
	}
	for _, k := range kids {
		if same, err := sys.Kcmp(tid, k, sys.KcmpVM, 0, 0); err == nil && same == sys.KcmpEqual {
			return k
		}
	}
	return 0
}

// checkSharing finds the processes of the tree that share their parent's
// fd table (clone with CLONE_FILES, without CLONE_THREAD): a restart forks
// them with CLONE_FILES, and their fds are written once, with the owner's.
// It refuses what separate processes cannot have back: memory shared with
// the parent (a vfork child, which the caller waits out), the filesystem
// context or the signal handlers, and an fd table shared otherwise than
// down the tree (with a process that is not an ancestor sharing it, or
// with one outside the tree).
func (s *session) checkSharing() error {
	byPid := map[int]*proc{}
	for _, p := range s.procs {
		byPid[p.pid] = p
		p.fdTable = nil
	}
	var owners []*proc
	for _, p := range s.procs {
		parent := byPid[p.ppid]
		if parent == nil {
			if same, err := sys.Kcmp(p.ppid, p.pid, sys.KcmpFiles, 0, 0); err == nil && same == sys.KcmpEqual {
				return fmt.Errorf("pid %d shares its fd table with its parent %d, which is not in the checkpoint: not supported", p.pid, p.ppid)
			}
			owners = append(owners, p)
			continue
		}
		for _, c := range []struct {
			typ  sys.KcmpType
			what string
		}{{sys.KcmpVM, ""}, {sys.KcmpFiles, ""}, {sys.KcmpFS, "filesystem context (cwd, root, umask)"}, {sys.KcmpSighand, "signal handlers"}} {
			same, err := sys.Kcmp(p.ppid, p.pid, c.typ, 0, 0)
			if err != nil || same != sys.KcmpEqual {
				if c.typ == sys.KcmpFiles {
					owners = append(owners, p)
				}
				continue
			}
			switch c.typ {
			case sys.KcmpVM:
				return &VforkError{Pid: p.pid, Parent: p.ppid}
			case sys.KcmpFiles:
				p.fdTable = parent
				if parent.fdTable != nil {
					p.fdTable = parent.fdTable
				}
				continue
			}
			return fmt.Errorf("pid %d shares its %s with its parent %d (clone without CLONE_THREAD): not supported", p.pid, c.what, p.ppid)
		}
	}
	return distinctFdTables(owners)
}

// distinctFdTables refuses two processes with their own fd table (not
// their parent's) that share one: kcmp orders the tables, so sorting
// brings any two that are the same together.
func distinctFdTables(owners []*proc) error {
	var kerr error
	sorted := slices.Clone(owners)
	slices.SortStableFunc(sorted, func(a, b *proc) int {
		order, err := sys.Kcmp(a.pid, b.pid, sys.KcmpFiles, 0, 0)
		switch {
		case err != nil:
			kerr = cmp.Or(kerr, fmt.Errorf("comparing the fd tables of pids %d and %d: %w", a.pid, b.pid, err))
		case order == sys.KcmpLess:
			return -1
		case order == sys.KcmpGreater:
			return 1
		}
		return 0
	})
	if kerr != nil {
		return kerr
	}
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if same, err := sys.Kcmp(a.pid, b.pid, sys.KcmpFiles, 0, 0); err == nil && same == sys.KcmpEqual {
			return fmt.Errorf("pids %d and %d share an fd table, neither being the other's parent or sharing its parent's: not supported", a.pid, b.pid)
		}
	}
	return nil
}

// collect gathers every process's state and examines every fd, before
// anything is written: whether a pipe is external depends on all of them.
func (s *session) collect() (*ckpt.Header, error) {
	if err := s.checkSharing(); err != nil {
		return nil, err
	}
	s.namespaces = &namespaces{own: s.ownNamespaces, byKey: map[nsKey]*recordedNamespace{}, dump: &ns.DumpContext{Log: s.log, SysVShm: map[ns.SysVKey]ckpt.Objref{}, Uncover: s.uncover}}
	s.files = &files.DumpContext{Log: s.log, Pipes: map[uint64]ckpt.Objref{}, PipeEnds: map[uint64]*files.PipeEnds{},
		Sockets: map[uint64]*files.Fd{}, Pairs: map[uint64]ckpt.Objref{}, PtyMasters: map[int]*files.Fd{}, Ptys: map[int]ckpt.Objref{}, PtySlaves: map[int]*files.Fd{},
		MountNamespaceOf: s.namespaces.mountNamespaceOf, MountsOf: s.namespaces.mountsOf,
		Caller: s.opts.Caller, CallerReply: s.opts.CallerReply}
	for _, p := range s.procs {
		st, err := s.collectProcess(p)
		if err != nil {
			return nil, &ProcessError{Pid: p.pid, Err: err}
		}
		p.state = st
		if p.fdTable != nil {
			continue // its fds are its fd table's owner's
		}
		if err := s.examineFds(p); err != nil {
			return nil, &ProcessError{Pid: p.pid, Err: err}
		}
	}
	if err := s.examinePassed(); err != nil {
		return nil, err
	}
	if err := s.namespaces.checkTree(s.procs); err != nil {
		return nil, err
	}
	var err error
	if s.cgroups, err = s.collectCgroups(); err != nil {
		return nil, err
	}
	// Whether a waiting connection can be restored depends on whether
	// the tree holds its client: once every fd is known.
	for _, p := range s.procs {
		for _, fd := range p.fds {
			if err := files.CheckAcceptQueue(s.files, fd); err != nil {
				return nil, &ProcessError{Pid: p.pid, Err: &FdError{Pid: p.pid, Fd: fd.Num, Err: err}}
			}
		}
	}
	// Connections are held still from here until their restore (or the
	// release): their peers retransmit rather than change the queues
	// being read, or meet a port without socket.
	if conns, err := files.LockConnections(s.files); err != nil {
		s.log.Warn("TCP peers may see their connections change while dumped, or reset until the restart", "connections", len(conns), "err", err)
	}
	s.procs = sessionOrder(s.procs, s.zombies)
	h := s.procs[0].state.header
	return &h, nil
}

func (s *session) tree() ckpt.Tree {
	var t ckpt.Tree
	for _, p := range s.procs {
		tp := p.state.tree
		tp.Ppid = p.ppid
		tp.SharesFdTable = p.fdTable != nil
		t.Processes = append(t.Processes, tp)
	}
	t.Processes = append(t.Processes, s.zombies...)
	markGoneLeaders(&t, leadsGroup)
	return t
}

// markGoneLeaders marks the processes of t whose process group's leader is
// neither in t nor, as leads tells, leading it still: it exited and was
// reaped, or moved to another group. A session's own group (pgid = sid)
// is never marked: only a session leader makes one.
func markGoneLeaders(t *ckpt.Tree, leads func(pgid int) bool) {
	in := map[int]bool{}
	for _, tp := range t.Processes {
		in[tp.Pid] = true
	}
	for i := range t.Processes {
		tp := &t.Processes[i]
		tp.PgidLeaderGone = tp.Pgid > 0 && !in[tp.Pgid] && tp.Pgid != tp.Sid && !leads(tp.Pgid)
	}
}

// leadsGroup says whether process pgid exists and leads the process group
// of that id.
func leadsGroup(pgid int) bool {
	st, err := procfs.ReadStat(pgid)
	return err == nil && st.Pgrp == pgid
}

func (s *session) write(ctx context.Context, cw *ckpt.Writer, mem *memoryDumper) error {
	tree := s.tree()
	if err := cw.Write(ckpt.TypeTree, 0, nil, &tree); err != nil {
		return err
	}
	for i := range s.cgroups {
		if err := cw.Write(ckpt.TypeCgroups, 0, nil, &s.cgroups[i]); err != nil {
			return err
		}
	}
	s.namespaces.dump.W = cw
	if err := s.namespaces.write(cw); err != nil {
		return err
	}
	s.files.W = cw
	s.files.DumpFd = func(fd *files.Fd) (ckpt.Objref, error) {
		ref, _, err := s.dumpDescription(fd)
		return ref, err
	}
	for _, p := range s.procs {
		if err := s.writeProcess(ctx, cw, p, mem); err != nil {
			return &ProcessError{Pid: p.pid, Err: err}
		}
	}
	return nil
}

func (s *session) writeProcess(ctx context.Context, cw *ckpt.Writer, p *proc, mem *memoryDumper) error {
	st := p.state
	st.process.Ctty = s.controllingTerminal(p)
	procRef := cw.NewObjref()
	var nsDeps []ckpt.Objref
	st.process.Namespaces, nsDeps = s.namespaces.refs(st.namespaces)
	if err := cw.Write(ckpt.TypeProcess, procRef, nsDeps, &st.process); err != nil {
		return err
	}
	if err := s.namespaces.writeObjects(p.pid); err != nil {
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
	mmDeps := []ckpt.Objref{procRef}
	if st.exeRemoved != nil {
		ref, err := s.files.ExeGhost(p.pid, st.mm.Exe.Path, st.exeRemoved)
		if err != nil {
			return fmt.Errorf("executable %s, removed: %w", st.mm.Exe.Path, err)
		}
		st.mm.ExeGhost = ref
		mmDeps = append(mmDeps, ref)
	}
	mmRef := cw.NewObjref()
	if err := cw.Write(ckpt.TypeMM, mmRef, mmDeps, &st.mm); err != nil {
		return err
	}
	if err := mem.open(p.pid); err != nil {
		return err
	}
	if mem.pre != nil {
		mem.track = mem.pre.procs[p.pid]
	}
	mem.cowPid, mem.cowMem = 0, nil
	if p.cow != nil {
		mem.cowPid, mem.cowMem = p.cow.pid, p.cow.mem
	}
	mem.madvise = st.madvise
	defer mem.Close()
	// Objects before what depends on them: the memfds the VMAs map. A
	// mapped file that was unlinked (a POSIX semaphore or shared memory
	// object in /dev/shm, a binary replaced by an upgrade) has no name to
	// map again either: its contents are kept the same way, and restart
	// maps a memfd holding them.
	mem.memfds = map[uint64]ckpt.Objref{}
	for _, m := range st.maps {
		if m.Kind != procfs.KindFile || !m.Deleted {
			continue
		}
		what := "memfd"
		var sysv *ckpt.SysVShm
		switch {
		case strings.HasPrefix(m.Path, "/SYSV") && st.namespaces[ckpt.NamespaceIPC] != 0:
			// A segment of its IPC namespace, written with it.
			ref, ok := s.namespaces.dump.SysVShm[ns.SysVKey{Namespace: st.namespaces[ckpt.NamespaceIPC], ID: int(m.Inode)}]
			if !ok {
				return fmt.Errorf("mapping %#x-%#x of System V shared memory %s: not among its IPC namespace's segments", m.Start, m.End, m.Path)
			}
			mem.memfds[m.Start] = ref
			continue
		case strings.HasPrefix(m.Path, "/SYSV"):
			what = "System V shared memory " + m.Path
			seg, err := sysvSegment(m.Inode)
			if err != nil {
				return fmt.Errorf("mapping %#x-%#x of %s: %w", m.Start, m.End, what, err)
			}
			sysv = seg
		case !strings.HasPrefix(m.Path, "/memfd:"):
			what = "deleted file " + m.Path
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", p.pid, m.Start, m.End))
		if err != nil {
			return fmt.Errorf("mapping %#x-%#x of %s: %w", m.Start, m.End, what, err)
		}
		ref, err := files.DumpSharedObject(s.files, f, m.Path, sysv)
		f.Close()
		if err != nil {
			return fmt.Errorf("mapping %#x-%#x of %s: %w", m.Start, m.End, what, err)
		}
		mem.memfds[m.Start] = ref
	}
	if err := s.packetRingsHeld(p); err != nil {
		return err
	}
	if err := mem.dumpAll(ctx, cw, mmRef, st.maps); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return s.dumpFiles(cw, p, procRef)
}

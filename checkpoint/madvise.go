package checkpoint

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// What madvise(2) and mlock(2) set on a VMA shows only in smaps, and
// reading smaps walks every page table of the process, holding its mmap
// lock for reading: about 8 ms a GiB of touched memory here, during which
// anything run inside the frozen process that maps or unmaps (the scratch
// page of injected calls, brk) waits. So smaps is read before the freeze,
// with a counter on every thread of the times it takes its mmap lock for
// writing, which every change to a VMA's flags or bounds needs. A process
// whose counters still read zero once it is frozen has the flags read
// before; any other is read again while frozen.
//
// The counters count in the context of the process's own threads (and
// those they create). A change made to its VMAs from outside is not seen:
// the only ones the kernel has are DAMON's virtual-address schemes that
// set MADV_HUGEPAGE or MADV_NOHUGEPAGE (process_madvise(2) takes no advice
// that changes flags).

// madviseFlags are the VmFlags a restart sets again, with the names the
// image gives them: madvise(2) advice and mlock state that change what the
// program sees (fork, core dumps, THP, locking).
var madviseFlags = []struct {
	flag procfs.VmFlag
	name string
}{
	{procfs.VmDontCopy, ckpt.MadvDontFork},
	{procfs.VmWipeOnFork, ckpt.MadvWipeOnFork},
	{procfs.VmDontDump, ckpt.MadvDontDump},
	{procfs.VmHugePage, ckpt.MadvHugePage},
	{procfs.VmNoHugePage, ckpt.MadvNoHugePage},
	{procfs.VmMergeable, ckpt.MadvMergeable},
	{procfs.VmLocked, ckpt.MadvLocked},
	{procfs.VmLockOnFault, ckpt.MadvLockOnFault},
	{procfs.VmSeqRead, ckpt.MadvSequential},
	{procfs.VmRandRead, ckpt.MadvRandom},
	{procfs.VmNoReserve, mapNoReserve},
	{procfs.VmDroppable, mapDroppable},
	{procfs.VmGrowsDown, mapGrowsDown},
}

// What smaps shows of mmap(2)'s flags goes with the madvise state, under
// these names, until vmaFlags moves it into the VMA's flags.
const (
	mapNoReserve = "map_noreserve" // MAP_NORESERVE: no swap space accounted
	mapDroppable = "map_droppable" // MAP_DROPPABLE: pages the kernel may drop
	mapMayWrite  = "map_maywrite"  // a shared mapping of a file open for writing
	mapGrowsDown = "map_growsdown" // MAP_GROWSDOWN: grows down when touched below, as a stack
)

// vmaFlags sets v's madvise state from names, smaps' flags as madviseFlags
// names them, but for the mmap flags among them, which go into v.Flags: a
// droppable mapping is of that type rather than private.
func vmaFlags(v *ckpt.VMA, names []string) {
	v.MadvFlags = nil
	for _, n := range names {
		switch n {
		case mapNoReserve:
			v.Flags |= unix.MAP_NORESERVE
		case mapGrowsDown:
			v.Flags |= unix.MAP_GROWSDOWN
		case mapDroppable:
			v.Flags = v.Flags&^unix.MAP_PRIVATE | unix.MAP_DROPPABLE
		case mapMayWrite:
			v.FileWrite = v.Flags&unix.MAP_SHARED != 0 && v.Flags&unix.MAP_ANONYMOUS == 0
		default:
			v.MadvFlags = append(v.MadvFlags, n)
		}
	}
}

// madvise is what smaps says of a process's VMAs: the madviseFlags of
// those that have any, and every VMA's range, to tell whether smaps saw
// the layout the checkpoint stores.
type madvise struct {
	flags  map[uint64][]string
	ranges map[[2]uint64]bool
	// anonymous is the process's private memory, in bytes (the sum of
	// smaps' Anonymous).
	anonymous int64
	err       error
}

// readMadvise reads smaps for the VMAs with any of madviseFlags.
func readMadvise(pid int) madvise {
	entries, err := procfs.ReadSmapsFlags(pid)
	if err != nil {
		return madvise{err: err}
	}
	out := madvise{flags: map[uint64][]string{}, ranges: map[[2]uint64]bool{}}
	for _, e := range entries {
		out.ranges[[2]uint64{e.Start, e.End}] = true
		out.anonymous += int64(e.Anonymous)
		for _, f := range madviseFlags {
			if e.VmFlags.Has(f.flag) {
				out.flags[e.Start] = append(out.flags[e.Start], f.name)
			}
		}
		// A shared mapping may be made writable only if its file was
		// opened so; a private one always may, and says nothing.
		if e.VmFlags.Has(procfs.VmMayShare) && e.VmFlags.Has(procfs.VmMayWrite) {
			out.flags[e.Start] = append(out.flags[e.Start], mapMayWrite)
		}
	}
	return out
}

// describes says whether m read smaps with exactly the VMAs of maps.
func (m madvise) describes(maps []procfs.Mapping) bool {
	if m.err != nil || len(m.ranges) != len(maps) {
		return false
	}
	for _, v := range maps {
		if !m.ranges[[2]uint64{v.Start, v.End}] {
			return false
		}
	}
	return true
}

// maxWatchedThreads bounds the counters (an fd each) kept for one
// process; a process with more threads has smaps read while frozen.
const maxWatchedThreads = 256

// earlyMadvise holds smaps read before the freeze, by pid.
type earlyMadvise struct {
	// pids are the tree's processes when it was read.
	pids  []int
	procs map[int]*earlyRead
}

// earlyRead is one process's smaps read before the freeze and the
// counters that tell whether it still holds.
type earlyRead struct {
	startTime uint64 // tells the process from a later one with its pid
	counters  []*sys.FD
	adv       madvise
}

// mmapLockTracepoint is the tracepoint the counters count.
const mmapLockTracepoint = "mmap_lock/mmap_lock_acquire_returned"

// A tracepointHold is mmapLockTracepoint's id and the fd that keeps it
// registered for perf (sys.HoldTracepoint), found and made in the
// background from the start of a checkpoint: finding the id may mount
// tracefs, and registering the tracepoint took 7-10 ms here, which the
// counters opened just before the freeze would otherwise pay, with the
// tree writing to its memory meanwhile.
type tracepointHold struct {
	done chan struct{}
	id   uint64
	err  error
	fd   *sys.FD // nil if it could not be held: the counters register it
}

func holdTracepoint() *tracepointHold {
	h := &tracepointHold{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		if h.id, h.err = sys.TracepointID(mmapLockTracepoint); h.err == nil {
			h.fd, _ = sys.HoldTracepoint(h.id)
		}
	}()
	return h
}

// Close lets the tracepoint go, after the counters: the last event on it
// waits for an RCU grace period.
func (h *tracepointHold) Close() {
	<-h.done
	if h.fd != nil {
		h.fd.Close()
	}
}

// readMadviseEarly reads smaps of pids, processes of the tree, which is
// running. Processes it cannot watch are left out, to be read while frozen.
func readMadviseEarly(pids []int, tp *tracepointHold) *earlyMadvise {
	e := &earlyMadvise{pids: pids, procs: map[int]*earlyRead{}}
	<-tp.done
	if tp.err != nil {
		return e
	}
	id := tp.id
	for _, pid := range pids {
		if r, err := watch(id, pid); err == nil {
			e.procs[pid] = r
		}
	}
	return e
}

var errTooManyThreads = errors.New("too many threads to watch")

// watch puts a counter on every thread of pid (eachThread: a thread
// created after its creator's counter is counted by it), then reads smaps.
func watch(id uint64, pid int) (_ *earlyRead, err error) {
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	r := &earlyRead{startTime: stat.StartTime}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	err = eachThread(pid, func(tid int) (bool, error) {
		if len(r.counters) == maxWatchedThreads {
			return false, errTooManyThreads
		}
		fd, err := sys.OpenTracepointCounter(id, "write == 1", tid)
		if err != nil {
			// A thread that has ended changes nothing any more.
			if threadGone(pid, tid) {
				return false, nil
			}
			return false, err
		}
		r.counters = append(r.counters, fd)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	r.adv = readMadvise(pid)
	if r.adv.err != nil {
		return nil, r.adv.err
	}
	return r, nil
}

// take returns what smaps said of pid before the freeze if it still
// holds: none of pid's threads has taken its mmap lock for writing since.
// It must be called with pid frozen and before anything runs inside it.
func (e *earlyMadvise) take(pid int, startTime uint64) (madvise, bool) {
	if e == nil {
		return madvise{}, false
	}
	r := e.procs[pid]
	if r == nil || r.startTime != startTime {
		return madvise{}, false
	}
	for _, c := range r.counters {
		if n, err := sys.ReadCounter(c); err != nil || n != 0 {
			return madvise{}, false
		}
	}
	return r.adv, true
}

// privateMemory is about how many bytes of private memory the tree holds:
// what smaps said before the freeze, or smaps_rollup for a process whose
// smaps was not read (residentEstimate). Either walks the process's page
// tables, 25 ms for a GiB here: once is enough.
func (e *earlyMadvise) privateMemory() int64 {
	var n int64
	for _, pid := range e.pids {
		if r := e.procs[pid]; r != nil {
			n += r.adv.anonymous
		} else {
			n += residentEstimate(pid)
		}
	}
	return n
}

// Close stops every counter.
func (e *earlyMadvise) Close() {
	if e == nil {
		return
	}
	for _, r := range e.procs {
		r.close()
	}
	e.procs = nil
}

func (r *earlyRead) close() {
	for _, c := range r.counters {
		c.Close()
	}
	r.counters = nil
}

package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// Pre-copy copies a tree's private memory while it runs, round after round,
// so that the frozen phase copies only what was written since the last
// round. Writes are tracked with a userfaultfd in asynchronous
// write-protect mode: the kernel has no soft-dirty bits here. A write to a
// protected page un-protects it without stopping the writer; PAGEMAP_SCAN
// finds and re-protects the written pages between rounds, and in the frozen
// phase a page whose pagemap entry still has the write-protect bit is
// exactly the copy taken before.
//
// The userfaultfd must be created by the target itself (its context belongs
// to the mm of its creator), so it is made by an injected userfaultfd(2),
// copied out with pidfd_getfd and closed in the target again. Closing the
// last copy, here, unregisters everything and lifts the protection.

// blockPages is how many pages one map entry of a tracker covers (2 MiB):
// the frozen phase looks pages up by the block, not one by one.
const blockPages = 512

// arenaChunkPages is the size of one allocation of the page store (16 MiB).
const arenaChunkPages = 4096

// zeroSlot marks a page that read as zeros, stored as nothing.
const zeroSlot = ^uint32(0)

// pageBlock holds, per page of a 2 MiB block, 0 for "no copy", zeroSlot, or
// the copy's arena slot plus one.
type pageBlock [blockPages]uint32

// preCopy is the pre-copy state of a whole tree.
type preCopy struct {
	log      *slog.Logger
	pageSize uint64
	procs    map[int]*tracker
	buf      []byte
	entries  []uint64
	regions  []sys.PageRegion
	// lastRound is how many pages the last round copied: the frozen
	// phase prepares about as much room for the pages written since.
	lastRound uint64
	// fresh holds pages copied in the frozen phase, kept until the image
	// is resolved; readMapping's parts take from it under freshMu.
	fresh   *pageStore
	freshMu sync.Mutex
	// rounds and bytes are what the rounds did, for Stats.
	rounds int
	bytes  uint64
	setup  time.Duration
}

// tracker follows one process.
type tracker struct {
	pid        int
	uffd       *os.File
	pagemap    *os.File
	registered []procfs.Mapping
	blocks     map[uint64]*pageBlock
	arena      [][]byte
	slots      uint32 // slots handed out
}

// trackable says whether a mapping's pages are copied ahead: private
// memory the process can write. Shared memory is read from its object in
// the frozen phase, special mappings are not stored at all.
func trackable(m *procfs.Mapping) bool {
	if m.Shared || m.Prot == 0 {
		return false
	}
	switch m.Kind {
	case procfs.KindVdso, procfs.KindVvar, procfs.KindVvarVclock, procfs.KindVsyscall, procfs.KindOther:
		return false
	}
	return true
}

// startPreCopy sets up write tracking in every process of the tree. The
// tree is frozen only to create each process's userfaultfd. A process where
// tracking cannot be set up is logged and copied whole in the frozen phase.
func startPreCopy(root int, log *slog.Logger) (*preCopy, error) {
	start := time.Now()
	pc := &preCopy{log: log, pageSize: uint64(os.Getpagesize()), procs: map[int]*tracker{},
		buf: make([]byte, chunkPages*os.Getpagesize()), regions: make([]sys.PageRegion, 4096)}
	s := &session{root: root, log: log, stats: &Stats{}}
	err := s.freezeTree()
	if err == nil {
		for _, p := range s.procs {
			uffd, terr := createUffd(p)
			if terr != nil {
				log.Warn("pre-copy is not available; this process's memory is copied while it is frozen", "pid", p.pid, "err", terr)
				continue
			}
			pc.procs[p.pid] = &tracker{pid: p.pid, uffd: uffd, blocks: map[uint64]*pageBlock{}}
		}
	}
	if terr := s.thaw(); err == nil && terr != nil {
		err = terr
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("pre-copy: freezing: %w", err)
	}
	pc.setup = time.Since(start)
	for pid, t := range pc.procs {
		if err := t.register(); err != nil {
			log.Warn("pre-copy is not available; this process's memory is copied while it is frozen", "pid", pid, "err", err)
			t.close()
			delete(pc.procs, pid)
		}
	}
	return pc, nil
}

// createUffd makes a userfaultfd inside frozen process p and takes it.
func createUffd(p *proc) (_ *os.File, err error) {
	r, err := remote.New(p.tracees[0])
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := r.Restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	n, err := r.Syscall(sys.SysUserfaultfd, unix.O_CLOEXEC|unix.O_NONBLOCK|sys.UffdUserModeOnly)
	if err != nil {
		return nil, fmt.Errorf("userfaultfd: %w", err)
	}
	pidfd, err := sys.PidfdOpen(p.pid)
	var fd *sys.FD
	if err == nil {
		fd, err = sys.PidfdGetfd(pidfd, int(n))
		pidfd.Close()
	}
	if _, cerr := r.Syscall(unix.SYS_CLOSE, n); cerr != nil {
		fd.Close()
		return nil, fmt.Errorf("closing the userfaultfd in the process: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	if err := sys.UffdEnableWPAsync(fd.Int()); err != nil {
		fd.Close()
		return nil, err
	}
	return fd.File("userfaultfd"), nil
}

// register write-protects the process's private mappings. It runs while
// the process does: a page written before its protection is copied after.
func (t *tracker) register() error {
	pm, err := procfs.OpenPagemap(t.pid)
	if err != nil {
		return err
	}
	t.pagemap = pm
	maps, err := procfs.ReadMaps(t.pid)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if !trackable(&m) {
			continue
		}
		// A mapping that changed meanwhile, or one the process tracks with
		// a userfaultfd of its own, is copied in the frozen phase.
		if err := sys.UffdRegisterWP(int(t.uffd.Fd()), m.Start, m.Size()); err != nil {
			continue
		}
		if err := sys.UffdWriteProtect(int(t.uffd.Fd()), m.Start, m.Size()); err != nil {
			continue
		}
		t.registered = append(t.registered, m)
	}
	if len(t.registered) == 0 {
		return errors.New("no mapping could be write-protected")
	}
	return nil
}

// round copies, in every tracked process, the pages written since the last
// round (the first round: every page).
func (pc *preCopy) round() {
	first := pc.rounds == 0
	pc.rounds++
	pc.lastRound = 0
	for pid, t := range pc.procs {
		var maps []procfs.Mapping
		if first {
			maps = t.registered
		} else {
			var err error
			if maps, err = procfs.ReadMaps(pid); err != nil {
				// Gone: the freeze will tell.
				continue
			}
		}
		for i := range maps {
			m := &maps[i]
			if !trackable(m) {
				continue
			}
			if first {
				pc.copyRange(t, m, m.Start, m.End)
				continue
			}
			pc.copyWritten(t, m)
		}
	}
}

// copyWritten finds the pages of m written since the last round, protects
// them again and copies them. A mapping that is not tracked (new since the
// setup, or moved) fails the scan and is left to the frozen phase.
func (pc *preCopy) copyWritten(t *tracker, m *procfs.Mapping) {
	q := sys.PagemapQuery{Flags: sys.ScanWPMatching | sys.ScanCheckWPAsync, CategoryMask: sys.PageWritten, ReturnMask: sys.PageWritten}
	_ = sys.PagemapWalk(int(t.pagemap.Fd()), m.Start, m.End, q, pc.regions, func(r sys.PageRegion) {
		pc.copyRange(t, m, r.Start, r.End)
	})
}

// copyRange copies the pages of [start, end) in m worth storing, and
// forgets earlier copies of the others.
func (pc *preCopy) copyRange(t *tracker, m *procfs.Mapping, start, end uint64) {
	ps := pc.pageSize
	for at := start; at < end; {
		stop := min(end, at+chunkPages*ps)
		entries, err := procfs.ReadPagemap(t.pagemap, at, stop, pc.entries)
		if err != nil {
			t.forget(at, stop, ps)
			at = stop
			continue
		}
		pc.entries = entries
		var runs []unix.RemoteIovec
		for i, e := range entries {
			addr := at + uint64(i)*ps
			if !wantPage(m, procfs.PagemapEntry(e)) {
				t.set(addr, ps, 0)
				continue
			}
			if k := len(runs); k > 0 && uint64(runs[k-1].Base)+uint64(runs[k-1].Len) == addr {
				runs[k-1].Len += int(ps)
			} else {
				runs = append(runs, unix.RemoteIovec{Base: uintptr(addr), Len: int(ps)})
			}
		}
		total := 0
		for _, r := range runs {
			total += r.Len
		}
		if total > 0 {
			addrs := append([]unix.RemoteIovec(nil), runs...)
			if err := readRemote(t.pid, pc.buf[:total], runs); err != nil {
				// Unmapped meanwhile, most likely: the frozen phase decides.
				for _, r := range addrs {
					t.forget(uint64(r.Base), uint64(r.Base)+uint64(r.Len), ps)
				}
			} else {
				pos := 0
				for _, r := range addrs {
					for a := uint64(r.Base); a < uint64(r.Base)+uint64(r.Len); a += ps {
						t.store(a, ps, pc.buf[pos:pos+int(ps)])
						pos += int(ps)
					}
				}
				pc.bytes += uint64(total)
				pc.lastRound += uint64(total) / ps
			}
		}
		at = stop
	}
}

// slot returns where the copy of the page at addr is recorded.
func (t *tracker) slot(addr, pageSize uint64, create bool) *uint32 {
	key := addr / (blockPages * pageSize)
	b := t.blocks[key]
	if b == nil {
		if !create {
			return nil
		}
		b = new(pageBlock)
		t.blocks[key] = b
	}
	return &b[(addr/pageSize)%blockPages]
}

func (t *tracker) set(addr, pageSize uint64, v uint32) {
	if p := t.slot(addr, pageSize, v != 0); p != nil {
		*p = v
	}
}

func (t *tracker) forget(start, end, pageSize uint64) {
	for a := start; a < end; a += pageSize {
		t.set(a, pageSize, 0)
	}
}

// store keeps a copy of page, overwriting an earlier copy in place.
func (t *tracker) store(addr, pageSize uint64, page []byte) {
	p := t.slot(addr, pageSize, true)
	if allZero(page) {
		*p = zeroSlot
		return
	}
	if *p == 0 || *p == zeroSlot {
		if int(t.slots) == len(t.arena)*arenaChunkPages {
			t.arena = append(t.arena, make([]byte, arenaChunkPages*pageSize))
		}
		t.slots++
		*p = t.slots
	}
	copy(t.page(*p, pageSize), page)
}

// page returns the arena memory of a slot value.
func (t *tracker) page(v uint32, pageSize uint64) []byte {
	s := uint64(v - 1)
	off := (s % arenaChunkPages) * pageSize
	// The capacity runs to the chunk's end so neighbouring copies join.
	return t.arena[s/arenaChunkPages][off : off+pageSize]
}

func (t *tracker) close() {
	if t.uffd != nil {
		t.uffd.Close()
		t.uffd = nil
	}
	if t.pagemap != nil {
		t.pagemap.Close()
		t.pagemap = nil
	}
}

// Close ends tracking: closing the userfaultfds lifts every protection. The
// copies stay readable for an image that still refers to them.
func (pc *preCopy) Close() {
	for _, t := range pc.procs {
		t.close()
	}
}

// prepareFresh touches room for about as many pages as the last round
// copied, before the freeze.
func (pc *preCopy) prepareFresh() {
	pc.fresh = newPageStore(int(max(pc.lastRound*2, 1024) * pc.pageSize))
}

// precopied is what the frozen phase found of one chunk of a tracked
// mapping: the pages to store, as runs, and their contents as pieces of
// the page store and of the fresh copies.
type precopied struct {
	runs   []ckpt.PageRun
	pieces [][]byte
	size   int64
	reused uint64 // pages taken from the rounds
	read   uint64 // bytes read now
}

// readTracked is the frozen phase for runs (candidates, at most a chunk)
// of tracked mapping m: a page still write-protected (its bit set in
// protected, by index in m) whose copy is kept is taken from the page
// store; every other page is read now. It goes over every page of the
// mapping while the process is frozen, so it works block by block, without
// a call per page.
func (pc *preCopy) readTracked(t *tracker, m *procfs.Mapping, runs []ckpt.PageRun, protected []uint64) (*precopied, error) {
	ps := pc.pageSize
	out := &precopied{}
	// The runs cut at block edges, each with the block of copies.
	type segment struct {
		idx, end uint64
		block    *pageBlock
		first    uint64 // idx's place in block
	}
	var segs []segment
	for _, r := range runs {
		for idx, last := r.Index, r.Index+r.Count; idx < last; {
			page := (m.Start + idx*ps) / ps
			end := min(last, idx+blockPages-page%blockPages)
			segs = append(segs, segment{idx: idx, end: end, block: t.blocks[page/blockPages], first: page % blockPages})
			idx = end
		}
	}
	// First pass: which pages must be read now.
	var stale []uint64
	for _, sg := range segs {
		for i := sg.idx; i < sg.end; i++ {
			if sg.block == nil || sg.block[sg.first+i-sg.idx] == 0 || i/64 >= uint64(len(protected)) || protected[i/64]&(1<<(i%64)) == 0 {
				stale = append(stale, i)
			}
		}
	}
	var fresh []byte
	if len(stale) > 0 {
		pc.freshMu.Lock()
		fresh = pc.fresh.takeOrAllocate(len(stale) * int(ps))
		pc.freshMu.Unlock()
		var remote []unix.RemoteIovec
		for _, idx := range stale {
			addr := m.Start + idx*ps
			if k := len(remote); k > 0 && uint64(remote[k-1].Base)+uint64(remote[k-1].Len) == addr {
				remote[k-1].Len += int(ps)
			} else {
				remote = append(remote, unix.RemoteIovec{Base: uintptr(addr), Len: int(ps)})
			}
		}
		if err := readRemote(t.pid, fresh, remote); err != nil {
			return nil, fmt.Errorf("reading %#x-%#x: %w", m.Start, m.End, err)
		}
		out.read = uint64(len(fresh))
	}
	// Second pass, in address order: the runs and the pieces. Copies of
	// neighbouring pages usually sit side by side in the store: they make
	// one piece, kept open in (chunk, off, n) until a page breaks it.
	var chunk, off, n uint64
	closePiece := func() {
		if n > 0 {
			out.pieces = append(out.pieces, t.arena[chunk][off*ps:(off+n)*ps])
			out.size += int64(n * ps)
			n = 0
		}
	}
	addRun := func(idx uint64) {
		if k := len(out.runs); k > 0 && out.runs[k-1].Index+out.runs[k-1].Count == idx {
			out.runs[k-1].Count++
		} else {
			out.runs = append(out.runs, ckpt.PageRun{Index: idx, Count: 1})
		}
	}
	next := 0
	for _, sg := range segs {
		for i := sg.idx; i < sg.end; i++ {
			if next < len(stale) && stale[next] == i {
				page := fresh[next*int(ps) : (next+1)*int(ps)]
				next++
				if allZero(page) {
					continue
				}
				closePiece()
				addRun(i)
				if k := len(out.pieces); k > 0 && follows(out.pieces[k-1], page) {
					out.pieces[k-1] = out.pieces[k-1][:len(out.pieces[k-1])+len(page)]
				} else {
					out.pieces = append(out.pieces, page)
				}
				out.size += int64(ps)
				continue
			}
			out.reused++
			slot := sg.block[sg.first+i-sg.idx]
			if slot == zeroSlot {
				continue
			}
			addRun(i)
			c, o := uint64(slot-1)/arenaChunkPages, uint64(slot-1)%arenaChunkPages
			if n > 0 && c == chunk && o == off+n {
				n++
				continue
			}
			closePiece()
			chunk, off, n = c, o, 1
		}
	}
	closePiece()
	return out, nil
}

// follows says whether b starts right where a ends, in the same memory.
func follows(a, b []byte) bool {
	// Capacity running over b means one allocation holds both.
	return len(a) > 0 && len(b) > 0 && cap(a) >= len(a)+len(b) &&
		unsafe.Add(unsafe.Pointer(unsafe.SliceData(a)), len(a)) == unsafe.Pointer(unsafe.SliceData(b))
}

// readMapping is the frozen phase for tracked mapping m of t: the pages to
// store, in pieces of at most chunk pages, from the page store or read now.
// Walking the page table and reading the pages written since the last
// round are most of a pre-copy's frozen phase: a mapping of more than a
// chunk is cut in parts of whole chunks, one per core.
func (pc *preCopy) readMapping(t *tracker, m *procfs.Mapping, chunk uint64) ([]*precopied, error) {
	ps := pc.pageSize
	pages := (m.End - m.Start) / ps
	protected := make([]uint64, (pages+63)/64)
	parts := min(uint64(runtime.NumCPU()), pages/chunk)
	if parts <= 1 {
		return pc.readPart(t, m, m.Start, m.End, chunk, pc.regions, protected)
	}
	// Whole chunks, so that parts share no word of protected.
	per := (pages/parts + chunk - 1) / chunk * chunk
	results := make([][]*precopied, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		from := m.Start + i*per*ps
		to := min(m.End, from+per*ps)
		if from >= to {
			break
		}
		regions := pc.regions
		if i > 0 {
			regions = make([]sys.PageRegion, len(pc.regions))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = pc.readPart(t, m, from, to, chunk, regions, protected)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []*precopied
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

// readPart is readMapping for [from, to) of m.
func (pc *preCopy) readPart(t *tracker, m *procfs.Mapping, from, to, chunk uint64, regions []sys.PageRegion, protected []uint64) ([]*precopied, error) {
	runs, err := scanTracked(t.pagemap, m, from, to, pc.pageSize, regions, protected)
	if err != nil {
		return nil, err
	}
	var out []*precopied
	for _, piece := range splitRuns(runs, chunk) {
		got, err := pc.readTracked(t, m, piece, protected)
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

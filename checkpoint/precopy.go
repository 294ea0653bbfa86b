package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
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
// What the frozen phase still reads, the pages written since the last
// round, is its floor: BenchmarkReadWritten1GiB1pc reads them at about
// 1 us a page here, no faster on two cores than on one. Copying them after
// the thaw instead, with a synchronous userfaultfd holding a writer until
// its page is copied, costs more while frozen on this machine: protecting
// a page again took 6-8 us an ioctl, protecting a whole GiB 17-30 ms.
//
// The userfaultfd must be created by the target itself (its context belongs
// to the mm of its creator), so it is made by an injected userfaultfd(2),
// copied out with pidfd_getfd and closed in the target again. Closing the
// last copy, here, unregisters everything and lifts the protection.

// blockPages is how many pages one map entry of a tracker covers (2 MiB):
// the frozen phase looks pages up by the block, not one by one.
const blockPages = 512

// roomPages is how much of the page file a tracker reserves at a
// time for its copies (16 MiB).
const roomPages = 4096

// zeroSlot marks a page that read as zeros, stored as nothing.
const zeroSlot = ^uint32(0)

// pageBlock holds, per page of a 2 MiB block, 0 for "no copy", zeroSlot, or
// the copy's slot in its tracker's room in the page file plus one.
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
	// tracked is how many pages the first round copied: all there were.
	tracked uint64
	// file holds the copies, those of the rounds and the pages read in the
	// frozen phase: memory crsub never maps, whose first touch costs
	// nothing like user memory's (pageFile). It is the image's when the
	// image keeps one (ownFile false), and outlives the pre-copy then.
	file    *pageFile
	ownFile bool
	// frozenBufs are the buffers the frozen phase reads pages through on
	// their way into the file, touched before the freeze.
	frozenBufs *bufPool
	// rounds and bytes are what the rounds did, for Stats.
	rounds int
	bytes  uint64
	setup  time.Duration
	// guardCategory says whether PAGEMAP_SCAN reports guard pages (the
	// memory dumper's finding, set before the freeze).
	guardCategory bool
}

// tracker follows one process.
type tracker struct {
	pid        int
	uffd       *os.File
	pagemap    *os.File
	registered []procfs.Mapping
	// populated are the regions of registered that held pages when they
	// were write-protected: what the first round copies.
	populated []sys.PageRegion
	blocks    map[uint64]*pageBlock
	file      *pageFile
	// rooms are where the tracker's slots are in the page file,
	// roomPages slots each.
	rooms []int64
	slots uint32 // slots handed out
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

// startPreCopy sets up write tracking in every process of the tree, the
// copies to be kept in file (made and closed by the pre-copy if nil). The
// tree is frozen only to create each process's userfaultfd. A process where
// tracking cannot be set up is logged and copied whole in the frozen phase.
func startPreCopy(root int, log *slog.Logger, file *pageFile) (*preCopy, error) {
	start := time.Now()
	pc := &preCopy{log: log, pageSize: uint64(os.Getpagesize()), procs: map[int]*tracker{},
		buf: make([]byte, chunkPages*os.Getpagesize()), regions: make([]sys.PageRegion, 4096), file: file}
	if file == nil {
		f, err := newPageFile(0)
		if err != nil {
			return nil, fmt.Errorf("pre-copy: a memory file for the copies: %w", err)
		}
		pc.file, pc.ownFile = f, true
	}
	s := &session{root: root, log: log, stats: &Stats{}}
	err := s.freezeTree()
	if err == nil {
		for _, p := range s.procs {
			uffd, terr := createUffd(p)
			if terr != nil {
				log.Warn("pre-copy is not available; this process's memory is copied while it is frozen", "pid", p.pid, "err", terr)
				continue
			}
			pc.procs[p.pid] = &tracker{pid: p.pid, uffd: uffd, blocks: map[uint64]*pageBlock{}, file: pc.file}
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
		if err := t.register(pc.regions); err != nil {
			log.Warn("pre-copy is not available; this process's memory is copied while it is frozen", "pid", pid, "err", err)
			t.close()
			delete(pc.procs, pid)
		}
	}
	return pc, nil
}

// createUffd makes a userfaultfd inside frozen process p and takes it. A
// failure leaves the process without it: an injected call that fails to
// report may have run, so the fds are compared before and after.
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
	had := userfaultfds(p.pid)
	n, err := r.Syscall(sys.SysUserfaultfd, unix.O_CLOEXEC|unix.O_NONBLOCK|sys.UffdUserModeOnly)
	if err != nil {
		closeNewUffds(r, p.pid, had)
		return nil, fmt.Errorf("userfaultfd: %w", err)
	}
	pidfd, err := sys.PidfdOpen(p.pid)
	var fd *sys.FD
	if err == nil {
		fd, err = sys.PidfdGetfd(pidfd, int(n))
		pidfd.Close()
	}
	if _, cerr := r.Syscall(unix.SYS_CLOSE, n); cerr != nil && closeNewUffds(r, p.pid, had) != nil {
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

// userfaultfds returns the fds of pid that are userfaultfds.
func userfaultfds(pid int) map[int]bool {
	fds := map[int]bool{}
	all, _ := procfs.Fds(pid)
	for _, fd := range all {
		if link, err := procfs.FdTarget(pid, fd); err == nil && link == "anon_inode:[userfaultfd]" {
			fds[fd] = true
		}
	}
	return fds
}

// closeNewUffds closes, inside pid, the userfaultfds it has that are not
// in had, and returns the last failure.
func closeNewUffds(r *remote.Remote, pid int, had map[int]bool) error {
	var err error
	for fd := range userfaultfds(pid) {
		if !had[fd] {
			if _, cerr := r.Syscall(unix.SYS_CLOSE, uint64(fd)); cerr != nil {
				err = cerr
			}
		}
	}
	return err
}

// register write-protects the process's private mappings. It runs while
// the process does: a page written before its protection is copied after.
func (t *tracker) register(regions []sys.PageRegion) error {
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
		before := len(t.populated)
		if err := t.protect(&m, regions); err != nil {
			t.populated = t.populated[:before]
			continue
		}
		t.registered = append(t.registered, m)
	}
	if len(t.registered) == 0 {
		return errors.New("no mapping could be write-protected")
	}
	return nil
}

// protect write-protects the pages of registered mapping m that are there
// (present or swapped) and notes them in t.populated. Protecting the whole
// range instead (UFFDIO_WRITEPROTECT) leaves a marker in every empty entry
// and makes the page tables to hold them: for a sparse mapping of
// terabytes, gigabytes of page tables. A page populated later is not
// protected, so it counts as written: the next round or the frozen phase
// copies it. regions is room for the scan's results.
func (t *tracker) protect(m *procfs.Mapping, regions []sys.PageRegion) error {
	q := sys.PagemapQuery{Flags: sys.ScanWPMatching | sys.ScanCheckWPAsync, CategoryAnyofMask: sys.PagePresent | sys.PageSwapped}
	return sys.PagemapWalk(int(t.pagemap.Fd()), m.Start, m.End, q, regions, func(r sys.PageRegion) {
		t.populated = append(t.populated, r)
	})
}

// round copies, in every tracked process, the pages written since the last
// round (the first round: every page).
func (pc *preCopy) round() {
	first := pc.rounds == 0
	pc.rounds++
	pc.lastRound = 0
	for pid, t := range pc.procs {
		if first {
			// What was there when protected, mapping by mapping.
			i := 0
			for _, r := range t.populated {
				for i < len(t.registered) && t.registered[i].End <= r.Start {
					i++
				}
				if i < len(t.registered) {
					pc.copyRange(t, &t.registered[i], r.Start, min(r.End, t.registered[i].End))
				}
			}
			t.populated = nil
			pc.tracked = pc.lastRound
			continue
		}
		maps, err := procfs.ReadMaps(pid)
		if err != nil {
			// Gone: the freeze will tell.
			continue
		}
		for i := range maps {
			m := &maps[i]
			if !trackable(m) {
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
			if procfs.PagemapEntry(e).UffdWPMarker() {
				// No page: zeros, or the file's page; nothing to
				// store, and reading would fault one in.
				t.set(addr, ps, zeroSlot)
				continue
			}
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
			err := readRemote(t.pid, pc.buf[:total], runs)
			if err == nil {
				err = t.keep(pc.buf[:total], addrs, ps)
			}
			if err != nil {
				// Unmapped meanwhile, most likely, or no room for the
				// copies: the frozen phase decides.
				for _, r := range addrs {
					t.forget(uint64(r.Base), uint64(r.Base)+uint64(r.Len), ps)
				}
			} else {
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

// slotsOf hands each the slots of pages [first, last) (page numbers,
// address over page size), block by block: n pages from page, with nil
// slots where a block has none. It stops when each says false.
func (t *tracker) slotsOf(first, last uint64, each func(page, n uint64, slots []uint32) bool) {
	for page := first; page < last; {
		n := min(last-page, blockPages-page%blockPages)
		var slots []uint32
		if block := t.blocks[page/blockPages]; block != nil {
			slots = block[page%blockPages:][:n]
		}
		if !each(page, n, slots) {
			return
		}
		page += n
	}
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

// keep stores copies of the pages read into buf from addrs, in order,
// overwriting earlier copies in place; a page of zeros is stored as
// nothing. Pages whose copies sit side by side in the page file are
// written at once.
func (t *tracker) keep(buf []byte, addrs []unix.RemoteIovec, pageSize uint64) error {
	ps := int64(pageSize)
	var off, from, n int64 // buf[from:from+n] goes at off
	flush := func() error {
		if n == 0 {
			return nil
		}
		if _, err := t.file.f.WriteAt(buf[from:from+n], off); err != nil {
			return fmt.Errorf("the page file: %w", err)
		}
		n = 0
		return nil
	}
	var pos int64
	for _, r := range addrs {
		for a := uint64(r.Base); a < uint64(r.Base)+uint64(r.Len); a, pos = a+pageSize, pos+ps {
			p := t.slot(a, pageSize, true)
			if allZero(buf[pos : pos+ps]) {
				*p = zeroSlot
				continue
			}
			if *p == 0 || *p == zeroSlot {
				if int(t.slots) == len(t.rooms)*roomPages {
					t.rooms = append(t.rooms, t.file.reserve(roomPages*ps))
				}
				t.slots++
				*p = t.slots
			}
			at := t.offset(*p, pageSize)
			if n > 0 && off+n == at && from+n == pos {
				n += ps
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			off, from, n = at, pos, ps
		}
	}
	return flush()
}

// offset returns where in the page file the copy of a slot value is.
func (t *tracker) offset(v uint32, pageSize uint64) int64 {
	s := uint64(v - 1)
	return t.rooms[s/roomPages] + int64((s%roomPages)*pageSize)
}

// unregisterPiece is how much of a mapping one UFFDIO_UNREGISTER lets go
// (2 MiB).
const unregisterPiece = blockPages * 4096

// close ends the tracking. Letting a whole mapping go at once (closing the
// userfaultfd does) rewrites every page table entry of it under the
// process's mmap lock, which stops its page faults meanwhile: a process
// writing 1% of a GiB per 100 ms was stopped 270-380 ms after the thaw,
// ten times its freeze. Piece by piece, with a pause between pieces (the
// pieces back to back stopped it as long), it was stopped at most 36 ms;
// the whole takes 0.8-0.9 s instead of 0.3, which is why the pre-copy of an
// image kept in memory lets go in the background (Image.Close waits).
func (t *tracker) close() {
	if t.uffd != nil {
		fd := int(t.uffd.Fd())
	unregister:
		for _, m := range t.registered {
			for at := m.Start; at < m.End; at += unregisterPiece {
				err := sys.UffdUnregister(fd, at, min(unregisterPiece, m.End-at))
				switch {
				case errors.Is(err, unix.EINVAL):
					// Not tracked here (unmapped, or moved): nothing
					// to let go.
				case err != nil:
					// Gone (ESRCH): nothing more to let go.
					break unregister
				default:
					time.Sleep(20 * time.Microsecond)
				}
			}
		}
		t.uffd.Close()
		t.uffd = nil
	}
	if t.pagemap != nil {
		t.pagemap.Close()
		t.pagemap = nil
	}
}

// Close ends tracking: closing the userfaultfds lifts every protection. The
// copies stay for an image that refers to them, in its page file; a page
// file of the pre-copy's own is closed.
func (pc *preCopy) Close() {
	for _, t := range pc.procs {
		t.close()
	}
	if pc.ownFile {
		pc.file.Close()
	}
}

// prepareFresh allocates room in the page file for about twice as many
// pages as the last round copied, before the freeze, and no more than
// there are (a process that outpaced the rounds may have written all of
// them again), and touches a buffer per core to read them through.
func (pc *preCopy) prepareFresh() {
	room := int64(max(min(pc.lastRound*2, pc.tracked+pc.tracked/32), 1024) * pc.pageSize)
	// What is not allocated now is allocated as it is written: slower.
	_ = pc.file.preallocate(room)
	pc.frozenBufs = newBufPool(runtime.NumCPU(), filePiecePages*int(pc.pageSize), true)
}

// precopied is what the frozen phase found of a tracked mapping, at most a
// chunk of stored pages: the pages to store, as runs, and their contents
// as ranges of the page file, copies of the rounds and pages read now.
type precopied struct {
	runs   []ckpt.PageRun
	ranges []ckpt.FileRange
	size   int64
	reused uint64 // pages taken from the rounds
	read   uint64 // bytes read now
	guards []ckpt.PageRun
}

// readMapping is the frozen phase for tracked mapping m of t: the pages to
// store, in pieces of at most chunk pages, from the page store or read now.
// Walking the page table and reading the pages written since the last
// round are most of a pre-copy's frozen phase: a mapping of more than a
// chunk is cut in parts, one per core.
func (pc *preCopy) readMapping(t *tracker, m *procfs.Mapping, chunk uint64) ([]*precopied, error) {
	type result struct {
		got []*precopied
		err error
	}
	results := inParts(m.Start, m.End, pc.pageSize, chunk, pc.regions, func(from, to uint64, regions []sys.PageRegion) result {
		got, err := pc.readPart(t, m, from, to, chunk, regions)
		return result{got, err}
	})
	var out []*precopied
	var errs []error
	for _, r := range results {
		out = append(out, r.got...)
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// A framePlan is what the frozen phase does with a stretch of pages of a
// tracked mapping, in address order: take them from the page store, where
// their copies sit side by side from slot on, or, with slot 0, read them
// now.
type framePlan struct {
	idx, count uint64 // pages, indexes from the mapping's start
	slot       uint32
}

// readPart is readMapping for [from, to) of m. It asks PAGEMAP_SCAN only
// for the pages that are not what the last round left (written since,
// swapped, or gone): most pages are not, and stretches the scan does not
// report are present and still write-protected, so their copies stand.
// Asking for every present page instead took twice as long in the kernel
// and gave twice as many regions, and going over the mapping page by page
// afterwards cost more than the scan (4 GiB, 1% written: 9.5 ms a core
// against 3.3 ms for the scan alone, measured here).
func (pc *preCopy) readPart(t *tracker, m *procfs.Mapping, from, to, chunk uint64, regions []sys.PageRegion) ([]*precopied, error) {
	ps := pc.pageSize
	pl := framePlanner{t: t, base: m.Start / ps}
	guards, err := pc.planPart(&pl, t, m, from, to, regions)
	if err != nil {
		return nil, err
	}
	fresh, stale, err := pc.readStale(t, m, pl.plan)
	if err != nil {
		return nil, err
	}
	pieces := pieceCutter{out: []*precopied{{reused: pl.reused, read: stale * ps, guards: guards}}, chunk: chunk, pageSize: ps}
	if err := pieces.cut(t, pl.plan, fresh); err != nil {
		return nil, err
	}
	return pieces.out, nil
}

// A framePlanner builds the frozen phase's plan for part of a tracked
// mapping, in address order. Neighbouring stretches are joined wherever
// they can be: each stretch read now is an iovec, and each stretch of
// copies a piece of the image's payload.
type framePlanner struct {
	t      *tracker
	base   uint64 // the mapping's first page number
	plan   []framePlan
	reused uint64 // pages taken from the rounds' copies
}

// read plans pages [idx, idx+count) to be read now, as part of the
// stretch before if that is read now too: one iovec, not two.
func (p *framePlanner) read(idx, count uint64) {
	if k := len(p.plan); k > 0 && p.plan[k-1].slot == 0 && p.plan[k-1].idx+p.plan[k-1].count == idx {
		p.plan[k-1].count += count
		return
	}
	p.plan = append(p.plan, framePlan{idx: idx, count: count})
}

// reuse plans pages [idx, idx+count) to be taken from the copies from slot
// on. Copies that read as zeros are counted but not planned: they are not
// stored. A stretch of copies is joined to the one before only within a
// room of the tracker's, where the copies are side by side in the file.
func (p *framePlanner) reuse(idx, count uint64, slot uint32) {
	p.reused += count
	if slot == zeroSlot {
		return
	}
	if k := len(p.plan); k > 0 && p.plan[k-1].slot != 0 && p.plan[k-1].idx+p.plan[k-1].count == idx &&
		p.plan[k-1].slot+uint32(p.plan[k-1].count) == slot && uint64(slot-1)%roomPages != 0 {
		p.plan[k-1].count += count
		return
	}
	p.plan = append(p.plan, framePlan{idx: idx, count: count, slot: slot})
}

// kept plans [first, end) (pages of m), whose pages are as the last
// round left them if it kept a copy: from the copy, else read.
func (p *framePlanner) kept(first, end uint64) {
	base := p.base
	p.t.slotsOf(base+first, base+end, func(page, n uint64, slots []uint32) bool {
		first := page - base
		if slots == nil {
			p.read(first, n)
			return true
		}
		for j := uint64(0); j < n; {
			s, k := slots[j], j+1
			switch s {
			case 0:
				for k < n && slots[k] == 0 {
					k++
				}
				p.read(first+j, k-j)
			case zeroSlot:
				for k < n && slots[k] == zeroSlot {
					k++
				}
				p.reuse(first+j, k-j, zeroSlot)
			default:
				// Side by side in one room: one piece.
				for k < n && slots[k] == s+uint32(k-j) && uint64(slots[k]-1)%roomPages != 0 {
					k++
				}
				p.reuse(first+j, k-j, s)
			}
			j = k
		}
		return true
	})
}

// staleQuery asks PAGEMAP_SCAN for what readPart needs and no more: the
// pages that are not as the last round left them (inverted on present, so
// that the untouched majority is not reported at all), with the categories
// that tell what became of them.
func (pc *preCopy) staleQuery(m *procfs.Mapping) sys.PagemapQuery {
	q := sys.PagemapQuery{CategoryInverted: sys.PagePresent, CategoryAnyofMask: sys.PagePresent | sys.PageWritten,
		ReturnMask: sys.PagePresent | sys.PageSwapped | sys.PageWritten}
	if m.Kind == procfs.KindFile {
		// The file's own pages are reported to be left out: a private
		// file mapping holds the file's pages and copy-on-written ones.
		q.CategoryAnyofMask |= sys.PageFile
		q.ReturnMask |= sys.PageFile
	}
	if pc.guardCategory {
		// A guard page is not present either, and may have been
		// write-protected by a round as any other entry.
		q.ReturnMask |= sys.PageGuard
	}
	return q
}

// planPart plans [from, to) of m into pl and returns its guard pages. The
// stretches between the regions the scan reports are as the last round
// left them; each region says why its pages are not.
func (pc *preCopy) planPart(pl *framePlanner, t *tracker, m *procfs.Mapping, from, to uint64, regions []sys.PageRegion) ([]ckpt.PageRun, error) {
	ps := pc.pageSize
	at := from
	var walkErr error
	var guards []ckpt.PageRun
	err := sys.PagemapWalk(int(t.pagemap.Fd()), from, to, pc.staleQuery(m), regions, func(r sys.PageRegion) {
		start := max(r.Start, at)
		if start >= r.End {
			return
		}
		pl.kept((at-m.Start)/ps, (start-m.Start)/ps)
		first, end := (start-m.Start)/ps, (r.End-m.Start)/ps
		at = r.End
		switch c := r.Categories; {
		case c&sys.PageGuard != 0:
			guards = addRun(guards, first, end-first)
		case c&sys.PageSwapped == 0 && (c&sys.PagePresent == 0 || c&sys.PageFile != 0):
			// Gone, or the file's.
		case c&sys.PageWritten != 0:
			pl.read(first, end-first)
		default:
			// Swapped out since the round, or no page but the marker
			// write protection leaves: one never populated, or in a
			// file mapping one dropped since the round (the file's
			// page again). Only pagemap tells a copy's page swapped
			// from a dropped one.
			if walkErr == nil {
				walkErr = pc.keptSwapped(t, m, first, end, pl)
			}
		}
	})
	if err == nil {
		err = walkErr
	}
	if err != nil {
		return nil, fmt.Errorf("pagemap of %#x-%#x: %w", from, to, err)
	}
	pl.kept((at-m.Start)/ps, (to-m.Start)/ps)
	return guards, nil
}

// readStale reads the pages plan has no copy of into the page file, through
// a buffer touched before the freeze, a piece at a time: readProcess makes
// as few process_vm_readv calls of a piece as it can. stale is how many
// pages that is.
func (pc *preCopy) readStale(t *tracker, m *procfs.Mapping, plan []framePlan) (fresh *freshPages, stale uint64, err error) {
	ps := pc.pageSize
	var toRead []ckpt.PageRun
	for _, p := range plan {
		if p.slot == 0 {
			toRead = append(toRead, ckpt.PageRun{Index: p.idx, Count: p.count})
		}
	}
	stale = runsCount(toRead)
	fresh = &freshPages{pageSize: ps}
	if stale == 0 {
		return fresh, 0, nil
	}
	buf := pc.frozenBufs.take()
	defer pc.frozenBufs.put(buf)
	for _, runs := range splitRuns(toRead, uint64(len(buf))/ps) {
		data := buf[:runsCount(runs)*ps]
		// readProcess: a mapping without PROT_READ (written, then made
		// PROT_NONE or write-only) is read past its protection.
		if err := readProcess(t.pid, m, data, runs, ps); err != nil {
			return nil, 0, fmt.Errorf("reading %#x-%#x: %w", m.Start, m.End, err)
		}
		if err := fresh.add(pc.file, data, ps); err != nil {
			return nil, 0, err
		}
	}
	return fresh, stale, nil
}

// freshPages are the pages read in the frozen phase, in plan order: in
// stretches of the page file, and stretches of zeros kept nowhere.
type freshPages struct {
	segs     []freshSeg
	pageSize uint64
}

type freshSeg struct {
	off   int64 // where in the page file; unused for zeros
	pages uint64
	zero  bool
}

// add keeps the pages of data, the next ones read, in the page file: side
// by side, in room reserved for exactly those that are not all zeros, in
// one write.
func (f *freshPages) add(file *pageFile, data []byte, pageSize uint64) error {
	ps := int(pageSize)
	var kept [][]byte
	var keptBytes int64
	first := len(f.segs)
	for i := 0; i < len(data); i += ps {
		page := data[i : i+ps]
		zero := allZero(page)
		if k := len(f.segs); k > first && f.segs[k-1].zero == zero {
			f.segs[k-1].pages++
		} else {
			f.segs = append(f.segs, freshSeg{pages: 1, zero: zero})
		}
		if zero {
			continue
		}
		if k := len(kept); k > 0 && follows(kept[k-1], page) {
			kept[k-1] = kept[k-1][:len(kept[k-1])+ps]
		} else {
			kept = append(kept, page)
		}
		keptBytes += int64(ps)
	}
	if keptBytes == 0 {
		return nil
	}
	off := file.reserve(keptBytes)
	at := off
	for i := first; i < len(f.segs); i++ {
		if !f.segs[i].zero {
			f.segs[i].off = at
			at += int64(f.segs[i].pages * pageSize)
		}
	}
	if err := sys.PwritevAll(int(file.f.Fd()), kept, off); err != nil {
		return fmt.Errorf("the page file: %w", err)
	}
	return nil
}

// next takes up to n pages, side by side: in the page file or zeros.
func (f *freshPages) next(n uint64) (freshSeg, bool) {
	for len(f.segs) > 0 && f.segs[0].pages == 0 {
		f.segs = f.segs[1:]
	}
	if len(f.segs) == 0 {
		return freshSeg{}, false
	}
	s := &f.segs[0]
	got := freshSeg{off: s.off, pages: min(n, s.pages), zero: s.zero}
	s.pages -= got.pages
	s.off += int64(got.pages * f.pageSize)
	return got, true
}

// A pieceCutter cuts a plan's pages into precopied of at most chunk pages
// each, the size of one pages record, and joins pieces that follow each
// other in memory: each piece is a write when the image is read.
type pieceCutter struct {
	out             []*precopied
	chunk, pageSize uint64
}

// cut cuts the pages of plan, taken from t's copies or from fresh, the
// pages read now in plan's order. Pages read now that hold only zeros are
// not stored.
func (c *pieceCutter) cut(t *tracker, plan []framePlan, fresh *freshPages) error {
	for _, p := range plan {
		if p.slot != 0 {
			c.store(p.idx, p.count, t.offset(p.slot, c.pageSize))
			continue
		}
		for idx, left := p.idx, p.count; left > 0; {
			seg, ok := fresh.next(left)
			if !ok {
				return fmt.Errorf("%d pages of the plan from page %d were not read", left, idx)
			}
			if !seg.zero {
				c.store(idx, seg.pages, seg.off)
			}
			idx, left = idx+seg.pages, left-seg.pages
		}
	}
	return nil
}

// store adds count pages from idx, whose contents are in the page file at
// off, starting a new precopied when the last is full.
func (c *pieceCutter) store(idx, count uint64, off int64) {
	ps, chunk := c.pageSize, c.chunk
	for count > 0 {
		cur := c.out[len(c.out)-1]
		if uint64(cur.size)/ps == chunk {
			cur = &precopied{}
			c.out = append(c.out, cur)
		}
		n := min(count, chunk-uint64(cur.size)/ps)
		cur.runs = addRun(cur.runs, idx, n)
		size := int64(n * ps)
		if k := len(cur.ranges); k > 0 && cur.ranges[k-1].Off+cur.ranges[k-1].N == off {
			cur.ranges[k-1].N += size
		} else {
			cur.ranges = append(cur.ranges, ckpt.FileRange{Off: off, N: size})
		}
		cur.size += size
		idx, count, off = idx+n, count-n, off+size
	}
}

// keptSwapped plans [first, end) of m (pages of m), swapped or marked by
// the write protection, with kept for the pages still there: a marker
// where a copy is kept stands for a page dropped since the round. Markers
// the rounds saw have no copy (zeroSlot), so pagemap is read only when a
// copy is at stake.
func (pc *preCopy) keptSwapped(t *tracker, m *procfs.Mapping, first, end uint64, pl *framePlanner) error {
	ps := pc.pageSize
	copies := false
	t.slotsOf(m.Start/ps+first, m.Start/ps+end, func(_, _ uint64, slots []uint32) bool {
		for _, s := range slots {
			if s != 0 && s != zeroSlot {
				copies = true
				return false
			}
		}
		return true
	})
	if !copies {
		pl.kept(first, end)
		return nil
	}
	entries, err := procfs.ReadPagemap(t.pagemap, m.Start+first*ps, m.Start+end*ps, nil)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if !procfs.PagemapEntry(e).UffdWPMarker() {
			pl.kept(first+uint64(i), first+uint64(i)+1)
		}
	}
	return nil
}

// follows says whether b starts right where a ends, in the same memory.
func follows(a, b []byte) bool {
	// Capacity running over b means one allocation holds both.
	return len(a) > 0 && len(b) > 0 && cap(a) >= len(a)+len(b) &&
		unsafe.Add(unsafe.Pointer(unsafe.SliceData(a)), len(a)) == unsafe.Pointer(unsafe.SliceData(b))
}

package checkpoint

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/ns"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// chunkPages bounds one pages record (and each copy buffer): 16 MiB.
const chunkPages = 4096

// copyBufferPages bounds a copy buffer, and so the pages records of a
// dump through them (an image streamed to a file): 4 MiB.
const copyBufferPages = 1024

// minChunkPages is the smallest copy buffer: 256 KiB.
const minChunkPages = 64

// areaKind maps a /proc maps kind to the image's.
func areaKind(m *procfs.Mapping) string {
	switch m.Kind {
	case procfs.KindHeap:
		return ckpt.VMAHeap
	case procfs.KindStack:
		return ckpt.VMAStack
	case procfs.KindVdso:
		return ckpt.VMAVdso
	case procfs.KindVvar:
		return ckpt.VMAVvar
	case procfs.KindVvarVclock:
		return ckpt.VMAVvarVclock
	case procfs.KindVsyscall:
		return ckpt.VMAVsyscall
	case procfs.KindFile:
		return ckpt.VMAFile
	case procfs.KindAIO:
		return ckpt.VMAAio
	}
	return ckpt.VMAAnon
}

// memoryDumper copies one process's memory into the image.
type memoryDumper struct {
	pid      int
	pageSize uint64
	pagemap  *os.File
	// files are the files the current process maps, by path: stat'd once
	// for all its mappings of each (a library has four or five), from
	// root (rootOf).
	files   map[string]mappedFile
	root    string
	entries []uint64
	runs    []ckpt.PageRun
	// guards are the guard pages of the mapping candidates went over.
	guards []ckpt.PageRun
	// regions is room for PAGEMAP_SCAN's results; scan says the kernel
	// has the ioctl, guardCategory that it reports guard pages.
	regions       []sys.PageRegion
	scan          bool
	guardCategory bool
	// bufs are the copy buffers, chunk pages each, touched before the
	// freeze: one per worker reading and one being written.
	bufs [][]byte
	// store, if set, is an in-memory image's page store: pages are read
	// into it and the image keeps them there, rather than being read
	// into bufs and copied into the image.
	store *pageStore
	// file, if set, is an in-memory image's page store that crsub never
	// maps (pageFile): pages are read a piece at a time through
	// pieceBufs, one for each worker and one for the reader, and written
	// into it, and the image refers to them there. It is used instead of
	// store.
	file      *pageFile
	pieceBufs chan []byte
	// shmemDone records the shared memory objects whose contents are
	// stored already (by inode), across the whole tree.
	shmemDone map[uint64]bool
	// shmemFile reads the current shared anonymous VMA's object, whose
	// size is shmemSize: d.runs count its pages from its start.
	shmemFile *os.File
	shmemSize uint64
	chunk     uint64 // pages per copy buffer and pages record
	stats     *Stats
	// memfds maps the start of a VMA mapping a memfd to the memfd's
	// object record, written before the process's VMAs.
	memfds map[uint64]ckpt.Objref
	// parent, if set, holds the pages of the image chain this image is
	// incremental to; pbuf reads one of them.
	parent *ckpt.PageIndex
	pbuf   []byte
	// progress, if set, hears of every chunk copied; expect is the total
	// it is told to expect.
	progress func(done, total int64)
	expect   int64
	// madvise is the current process's madvise state by VMA start.
	madvise map[uint64][]string
	// pre, if set, holds the pages copied before the freeze; track is the
	// current process's part of it (nil if not tracked).
	pre   *preCopy
	track *tracker
	// cowPid, if set, is the current process's copy-on-write copy
	// (cowCopy) and cowMem its /proc/PID/mem: its private pages are read
	// from there after the thaw, into payloads the image holds a place
	// for. zeroPFN is the shared zero page's frame, whose pages need no
	// reading.
	cowPid  int
	cowMem  *os.File
	zeroPFN uint64
	// copyBufs, if set, holds buffers to read a copy-on-write copy
	// through, a piece at a time: the image copies what it is given
	// (streams). Otherwise each payload is read whole into memory the
	// image keeps.
	copyBufs *bufPool
	// elsewhere finds a mapped file in another mount namespace of the
	// image (namespaces.elsewhere).
	elsewhere func(pid int, path string, dev, ino uint64) (ckpt.FileIdentity, bool)
}

// copyPiecePages is how many pages of a copy-on-write copy are read at
// once into a buffer of copyBufs (4 MiB).
const copyPiecePages = 1024

// fromCopy says whether m's pages are read from the copy-on-write copy.
func (d *memoryDumper) fromCopy(m *procfs.Mapping) bool {
	return d.cowPid != 0 && cowable(m, d.madvise[m.Start])
}

// tracked says whether m's pages may come from the pre-copy.
func (d *memoryDumper) tracked(m *procfs.Mapping) bool {
	return d.track != nil && d.shmemFile == nil && trackable(m) && !d.droppable(m)
}

// droppable says whether m is a MAP_DROPPABLE mapping, whose pages the
// kernel drops when it likes: none is stored, and it comes back empty, as
// after such a drop.
func (d *memoryDumper) droppable(m *procfs.Mapping) bool {
	return slices.Contains(d.madvise[m.Start], mapDroppable)
}

func (d *memoryDumper) closeShmem() {
	if d.shmemFile != nil {
		d.shmemFile.Close()
		d.shmemFile = nil
	}
}

// newMemoryDumper prepares copy buffers sized for a process that maps
// about mapped bytes (a small process does not pay for touching 32 MiB),
// unless store, an in-memory image's page store, has room prepared: pages
// are read into that, and the buffers are made only if it runs out.
func newMemoryDumper(stats *Stats, mapped uint64, store *pageStore, file *pageFile) *memoryDumper {
	ps := uint64(os.Getpagesize())
	chunk := chunkFor(mapped)
	d := &memoryDumper{pageSize: ps, chunk: chunk, stats: stats, shmemDone: map[uint64]bool{}, store: store, file: file, bufs: make([][]byte, runtime.NumCPU()+1),
		regions: make([]sys.PageRegion, 4096), scan: true, guardCategory: sys.PagemapKnowsGuards()}
	if file != nil {
		d.pieceBufs = make(chan []byte, runtime.NumCPU()+1)
		for range cap(d.pieceBufs) {
			d.pieceBufs <- kernelTouched(filePiecePages * int(ps))
		}
		return d
	}
	if !store.prepared() {
		// Each buffer is touched by the kernel before the freeze, at
		// 15-30 µs a page here: two of 16 MiB took 0.2-0.6 s of a
		// default checkpoint, two of 4 MiB a quarter of that, and a 1
		// GiB process is then 256 records instead of 64.
		chunk = min(chunk, copyBufferPages)
		d.chunk = chunk
		for b := range d.bufs {
			d.bufs[b] = kernelTouched(int(chunk * ps))
		}
	}
	return d
}

// chunkFor is the pages per copy buffer and pages record for a process
// that maps about mapped bytes.
func chunkFor(mapped uint64) uint64 {
	return min(max(mapped/uint64(os.Getpagesize()), minChunkPages), chunkPages)
}

// allZero says whether b holds only zeros: such pages are not stored.
func allZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		k := min(len(b), len(zero))
		if !bytes.Equal(b[:k], zero[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// open points the dumper at process pid.
func (d *memoryDumper) open(pid int) error {
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return err
	}
	d.pid, d.pagemap, d.track = pid, pm, nil
	d.files, d.root = map[string]mappedFile{}, rootOf(pid)
	return nil
}

// mappedFile is what identity said of a path.
type mappedFile struct {
	id  ckpt.FileIdentity
	err error
}

// identity is identity(d.pid, path), asked once for each path.
func (d *memoryDumper) identity(path string) (ckpt.FileIdentity, error) {
	f, ok := d.files[path]
	if !ok {
		f.id, f.err = identityFrom(d.root, path)
		d.files[path] = f
	}
	return f.id, f.err
}

// Close lets go of the current process's pagemap.
func (d *memoryDumper) Close() error {
	d.closeShmem()
	if d.pagemap == nil {
		return nil
	}
	err := d.pagemap.Close()
	d.pagemap = nil
	return err
}

// vmaRecord describes a mapping; file mappings are named by their
// identity (what identify says of the path) so a restart can refuse a file
// that changed. elsewhere, if set, finds a mapped file pid's root does not
// show in another mount namespace of the image (namespaces.elsewhere).
func vmaRecord(pid int, m *procfs.Mapping, identify func(path string) (ckpt.FileIdentity, error), elsewhere func(pid int, path string, dev, ino uint64) (ckpt.FileIdentity, bool)) (*ckpt.VMA, error) {
	v := &ckpt.VMA{Pid: pid, Start: m.Start, End: m.End, Kind: areaKind(m)}
	if m.Prot&procfs.ProtRead != 0 {
		v.Prot |= unix.PROT_READ
	}
	if m.Prot&procfs.ProtWrite != 0 {
		v.Prot |= unix.PROT_WRITE
	}
	if m.Prot&procfs.ProtExec != 0 {
		v.Prot |= unix.PROT_EXEC
	}
	if m.Shared {
		v.Flags |= unix.MAP_SHARED
	} else {
		v.Flags |= unix.MAP_PRIVATE
	}
	if m.Kind == procfs.KindStack {
		v.Flags |= unix.MAP_GROWSDOWN
	}
	switch {
	case m.Kind == procfs.KindFile && !m.Deleted:
		id, err := identify(m.Path)
		if (err != nil || id.Inode != m.Inode || id.Dev != m.Dev) && elsewhere != nil {
			if other, ok := elsewhere(pid, m.Path, m.Dev, m.Inode); ok {
				id, err = other, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("mapping %#x-%#x of %s: %w", m.Start, m.End, m.Path, err)
		}
		if id.Inode != m.Inode || id.Dev != m.Dev {
			return nil, fmt.Errorf("mapping %#x-%#x of %s: the path now names another file (inode %d, mapped inode %d)", m.Start, m.End, m.Path, id.Inode, m.Inode)
		}
		v.File = &id
		v.Pgoff = m.Offset
	case m.Kind == procfs.KindFile && m.Deleted:
		// The memfd object (or deleted file's contents), written before
		// this record, holds the pages of a shared mapping; a private one
		// stores its own copies.
		v.Pgoff = m.Offset
	case m.Kind == procfs.KindOther && socketMapped(m) != 0:
		// Whose socket is a packet socket the process holds, the
		// checkpoint checked (packetRingHeld).
		v.Kind, v.PacketSocket, v.Pgoff = ckpt.VMAPacketRing, socketMapped(m), m.Offset
	case m.Kind == procfs.KindOther:
		return nil, fmt.Errorf("mapping %#x-%#x (%s): unsupported special mapping", m.Start, m.End, m.Path)
	case m.Kind == procfs.KindAIO:
		// The ring's pages are stored as shared memory's are; restart
		// makes a ring and moves it here (restart/aio.go).
	default:
		v.Flags |= unix.MAP_ANONYMOUS
		if m.Shared {
			v.Shmem = m.Inode
			v.Pgoff = m.Offset
		}
	}
	return v, nil
}

// socketMapped is the inode of the socket m maps (a packet socket's
// rings), 0 if m maps no socket.
func socketMapped(m *procfs.Mapping) uint64 {
	if l := procfs.ParseFdTarget(m.Path); l.Kind == procfs.FdSocket {
		return l.Inode
	}
	return 0
}

// packetRingsHeld refuses a mapping of a socket that a restart could not
// map again: the socket must be a packet socket the process holds an fd
// on, and the first process of the image to hold one (the one that
// restores it, the mapping following it).
func (s *session) packetRingsHeld(p *proc) error {
	for i := range p.state.maps {
		m := &p.state.maps[i]
		ino := socketMapped(m)
		if ino == 0 {
			continue
		}
		if fd := s.files.Sockets[ino]; fd == nil || fd.Socket == nil || fd.Socket.Family != unix.AF_PACKET {
			return fmt.Errorf("mapping %#x-%#x (%s): not the rings of a packet socket the tree holds an fd on: unsupported", m.Start, m.End, m.Path)
		}
		for _, q := range s.procs {
			if slices.ContainsFunc(q.fds, func(fd *files.Fd) bool { return fd.Link.Kind == procfs.FdSocket && fd.Link.Inode == ino }) {
				if q != p {
					return fmt.Errorf("mapping %#x-%#x (%s): the rings of a packet socket whose first fd is in process %d: unsupported (only the process that restores the socket maps them again)", m.Start, m.End, m.Path, q.pid)
				}
				break
			}
		}
		if !slices.ContainsFunc(p.fds, func(fd *files.Fd) bool { return fd.Link.Kind == procfs.FdSocket && fd.Link.Inode == ino }) {
			return fmt.Errorf("mapping %#x-%#x (%s): the rings of a packet socket the process holds no fd on: unsupported", m.Start, m.End, m.Path)
		}
	}
	return nil
}

func identity(pid int, path string) (ckpt.FileIdentity, error) {
	return identityFrom(rootOf(pid), path)
}

// identityFrom is identity of path as seen from root (rootOf).
func identityFrom(root, path string) (ckpt.FileIdentity, error) {
	var st unix.Stat_t
	if err := unix.Stat(root+path, &st); err != nil {
		return ckpt.FileIdentity{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return ckpt.FileIdentity{Path: path, Dev: st.Dev, Inode: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano()}, nil
}

// rootOf is where crsub reaches a path as /proc/PID/maps and fd links
// name it for process pid from (root+path): the root of its mount
// namespace when it is in one of its own (they name paths from there),
// which is its root (/proc/PID/root) or as many directories above as that
// is below it, if it chrooted; crsub's own ("") otherwise.
func rootOf(pid int) string {
	mine, err1 := ns.Inode(pid, ckpt.NamespaceMnt)
	ours, err2 := ns.Inode(os.Getpid(), ckpt.NamespaceMnt)
	if err1 != nil || err2 != nil || mine == ours {
		return ""
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	if below, err := os.Readlink(root); err == nil && strings.HasPrefix(below, "/") {
		for _, c := range strings.Split(below, "/") {
			if c != "" {
				root += "/.."
			}
		}
	}
	return root
}

// wantPage says whether a page must be stored: memory that only this
// process holds. Clean file pages come back from their file; the all-zero
// check happens after reading.
func wantPage(m *procfs.Mapping, e procfs.PagemapEntry) bool {
	switch {
	case e.Guard():
		return false // no page: reading it faults
	case m.Kind == procfs.KindVdso || m.Kind == procfs.KindVvar || m.Kind == procfs.KindVvarVclock || m.Kind == procfs.KindVsyscall:
		return false
	case m.Shared && m.Kind == procfs.KindFile:
		return false // the file holds it
	case m.Shared:
		return e.Present() || e.Swapped()
	case m.Kind == procfs.KindFile:
		// Copy-on-written pages of a private file mapping are anonymous.
		return e.Swapped() || (e.Present() && !e.FileShared())
	default:
		return e.Present() || e.Swapped()
	}
}

// dumpAll writes every mapping's VMA record and the pages records holding
// its stored pages. Copying out of the process and writing the image
// overlap: a goroutine fills one buffer (pagemap, process_vm_readv, zero
// check) while this one writes the other. For an in-memory image with a
// page store, pages are read into the store instead, by a worker per core,
// and the image refers to them there.
func (d *memoryDumper) dumpAll(ctx context.Context, w *ckpt.Writer, mmRef ckpt.Objref, maps []procfs.Mapping) error {
	items := make(chan dumpItem, 1024)
	reads := make(chan *storeRead)
	for range runtime.NumCPU() {
		go readIntoStore(reads)
	}
	free := make(chan int, len(d.bufs))
	for i := range d.bufs {
		free <- i
	}
	q := dumpQueues{items: items, reads: reads, free: free, stop: make(chan struct{})}
	defer close(q.stop)
	go func() {
		// Only the sender closes: the workers end with it.
		defer close(q.reads)
		defer close(q.items)
		d.sendMappings(q, maps)
	}()
	for it := range q.items {
		if err := ctx.Err(); err != nil {
			return err // the deferred close stops the reader
		}
		if r := it.pending; r != nil {
			kept, err := d.awaitStoreRead(ctx, r)
			if err != nil {
				return err
			}
			if !kept {
				if r.copyBuf >= 0 {
					q.free <- r.copyBuf
				}
				continue
			}
			switch {
			case r.copyBuf >= 0:
				it.pages.Runs, it.data, it.crc, it.buf, it.pending = r.kept, r.data, r.crc, r.copyBuf, nil
			case r.inFile != nil:
				it.pages.Runs, it.inFile, it.pending = r.kept, r.inFile, nil
			default:
				it.pages.Runs, it.pieces, it.size = r.kept, [][]byte{r.data}, int64(len(r.data))
			}
		}
		if err := d.writeItem(w, mmRef, &it, q.free); err != nil {
			return err
		}
	}
	return nil
}

// A dumpItem is what dumpAll's reader hands its writer, in the order of
// the image: a VMA record, the error that ends the dump, or a pages record
// whose payload is in one of five places. Which place decides how the
// writer writes it and when the memory may be used again: a copy buffer is
// handed back once written, pieces stay put for the image to refer to, a
// copy-on-write copy is read only after the thaw, and a worker's read is
// waited for in turn so that the records keep their order.
type dumpItem struct {
	vma   *ckpt.VMA  // a VMA record to write, or
	pages ckpt.Pages // a pages record, its payload in data
	data  []byte
	crc   uint32 // data's checksum (ckpt.PayloadChecksum)
	buf   int    // which buffer data lives in, to hand back
	// or, for memory copied ahead, in pieces (deferred: they stay put)
	pieces [][]byte
	size   int64
	// or, for a copy-on-write copy, read from it when the image
	// asks (cowPid), after the thaw
	cow bool
	// or, for pages a worker reads into the page store, the read:
	// once done, its pages are written as pieces (or as inFile)
	pending *storeRead
	// or, for pages in the page file, where they are
	inFile *fileRange
	// or, for the pre-copy's pages, where they are in its page file
	// (deferred: they stay put)
	ranges []ckpt.FileRange
	err    error
}

// dumpQueues connect dumpAll's reader to its writer (items, and free, the
// copy buffers the writer is done with) and to the workers reading into
// the page store (reads); stop, closed when the writer returns, lets the
// reader go wherever it waits.
//
// Reads into the page store go to a worker per core, as they read nothing
// else of the dumper; their items wait in order. items is deep enough that
// the sender never waits for the writer: the writer runs on the goroutine
// locked to the tracing thread, and handing it each item as it comes woke
// that thread once per item (a pre-copied GiB comes as 17 items: 0.5-0.85
// ms of the frozen phase, measured here). What the items hold is bounded
// apart (buffers, page store).
type dumpQueues struct {
	items chan dumpItem
	reads chan *storeRead
	free  chan int
	stop  chan struct{}
}

// send hands it to the writer, and says false if the writer has given up:
// the reader then stops without a word, the writer's error being the one
// reported.
func (q dumpQueues) send(it dumpItem) bool {
	select {
	case q.items <- it:
		return true
	case <-q.stop:
		return false
	}
}

// readIntoStore is a worker of dumpAll: the reads into the page store take
// nothing of the dumper's state, so one per core run at once.
func readIntoStore(reads <-chan *storeRead) {
	for r := range reads {
		if r.file != nil {
			buf := <-r.pieceBufs
			var got fileRange
			got, r.kept, r.err = readIntoFile(r.file, r.runs, buf, r.pageSize, func(piece []ckpt.PageRun, buf []byte) ([]byte, []ckpt.PageRun, error) {
				return readPrivate(r.pid, r.m, piece, buf, r.pageSize)
			})
			r.pieceBufs <- buf
			r.inFile = &got
		} else {
			r.data, r.kept, r.err = readPrivate(r.pid, r.m, r.runs, r.buf, r.pageSize)
			if r.copyBuf >= 0 && r.err == nil {
				r.crc = ckpt.PayloadChecksum(0, r.data)
			}
		}
		close(r.done)
	}
}

// sendMappings is dumpAll's reader, on a goroutine of its own so that
// finding and reading a mapping's pages overlaps the writing of those
// before. Its first error is sent as the last item: the writer is the one
// that returns it.
func (d *memoryDumper) sendMappings(q dumpQueues, maps []procfs.Mapping) {
	for i := range maps {
		m := &maps[i]
		v, tracked, err := d.findPages(m)
		if err != nil {
			q.send(dumpItem{err: err})
			return
		}
		if !q.send(dumpItem{vma: v}) {
			return
		}
		var ok bool
		switch {
		case d.fromCopy(m):
			ok = d.sendFromCopy(q, m)
		case d.tracked(m):
			ok = d.sendPrecopied(q, m, tracked)
		default:
			ok = d.sendRead(q, m)
		}
		if !ok {
			return
		}
	}
}

// findPages makes m's VMA record and finds the pages of m to store: what
// the pre-copy found, for a mapping it tracks, or else d.runs. The guard
// pages found on the way go into the record, not among the pages: they
// hold nothing, and restart installs them again.
func (d *memoryDumper) findPages(m *procfs.Mapping) (*ckpt.VMA, []*precopied, error) {
	v, err := vmaRecord(d.pid, m, d.identity, d.elsewhere)
	if err == nil {
		vmaFlags(v, d.madvise[m.Start])
	}
	// The shared object the mapping before may have read is
	// done with (tracked says so only for private memory).
	d.closeShmem()
	var tracked []*precopied
	switch {
	case err != nil:
	case d.tracked(m):
		tracked, err = d.pre.readMapping(d.track, m, d.chunk)
		for _, got := range tracked {
			v.Guards = append(v.Guards, got.guards...)
		}
	default:
		err = d.candidates(m)
		v.Guards = slices.Clone(d.guards)
		if d.shmemFile != nil {
			v.ShmemSize = d.shmemSize
		}
	}
	return v, tracked, err
}

// sendFromCopy sends m's pages as records whose payload the image fills
// in from the copy-on-write copy after the thaw: while frozen, only their
// place in the image is decided.
func (d *memoryDumper) sendFromCopy(q dumpQueues, m *procfs.Mapping) bool {
	for _, runs := range splitRuns(d.runs, d.chunk) {
		size := int64(runsCount(runs) * d.pageSize)
		if !q.send(dumpItem{pages: ckpt.Pages{Pid: d.pid, VMAStart: m.Start, Runs: runs}, cow: true, size: size}) {
			return false
		}
	}
	return true
}

// sendPrecopied sends what the frozen phase found of tracked mapping m.
// Its pages are in the pre-copy's memory, which outlives the image's
// writing: the records refer to them where they are.
func (d *memoryDumper) sendPrecopied(q dumpQueues, m *procfs.Mapping, tracked []*precopied) bool {
	for _, got := range tracked {
		atomic.AddUint64(&d.stats.BytesRead, got.read)
		d.stats.PagesPreCopied += got.reused
		if k := len(d.stats.PreCopy); k > 0 {
			d.stats.PreCopy[k-1].PagesWritten += got.read / d.pageSize
		}
		if len(got.runs) == 0 {
			continue
		}
		if !q.send(dumpItem{pages: ckpt.Pages{Pid: d.pid, VMAStart: m.Start, Runs: got.runs}, ranges: got.ranges, size: got.size}) {
			return false
		}
	}
	return true
}

// sendRead reads the pages of d.runs, a chunk at a time, and sends them.
// Where the page store has room, the pages are read into it and stay: the
// image refers to them instead of copying them again. Where it has none,
// they go through the two copy buffers, so that a read overlaps the
// writing of the chunk before.
func (d *memoryDumper) sendRead(q dumpQueues, m *procfs.Mapping) bool {
	for _, runs := range splitRuns(d.runs, d.chunk) {
		var dst []byte
		if d.file == nil {
			dst = d.store.take(int(runsCount(runs) * d.pageSize))
		}
		var ok bool
		switch {
		case d.file != nil && (d.shmemFile != nil || d.parent != nil):
			ok = d.sendReadIntoFile(q, m, runs)
		case d.file != nil:
			ok = d.sendWorkerRead(q, m, runs, nil)
		case dst != nil && (d.shmemFile != nil || d.parent != nil):
			ok = d.sendReadIntoStore(q, m, runs, dst)
		case dst != nil:
			ok = d.sendWorkerRead(q, m, runs, dst)
		case d.shmemFile != nil || d.parent != nil:
			ok = d.sendReadIntoBuffer(q, m, runs)
		default:
			ok = d.sendWorkerBufferRead(q, m, runs)
		}
		if !ok {
			return false
		}
	}
	return true
}

// sendReadIntoStore reads runs of m into dst, room of the page store, on
// this goroutine: pages of a shared object, or compared with the parent
// image's, are read with the dumper's state, which the workers do not
// share. The room the zero pages left is given back.
func (d *memoryDumper) sendReadIntoStore(q dumpQueues, m *procfs.Mapping, runs []ckpt.PageRun, dst []byte) bool {
	data, kept, err := d.read(m, runs, dst)
	if err != nil {
		q.send(dumpItem{err: err})
		return false
	}
	d.store.giveBack(dst, len(data))
	return len(kept) == 0 || q.send(dumpItem{pages: d.pagesOf(m, kept), pieces: [][]byte{data}, size: int64(len(data))})
}

// sendReadIntoFile reads runs of m into the page file, through a piece
// buffer, on this goroutine: pages of a shared object, or compared with
// the parent image's, are read with the dumper's state, which the workers
// do not share.
func (d *memoryDumper) sendReadIntoFile(q dumpQueues, m *procfs.Mapping, runs []ckpt.PageRun) bool {
	var buf []byte
	select {
	case buf = <-d.pieceBufs:
	case <-q.stop:
		return false
	}
	r, kept, err := readIntoFile(d.file, runs, buf, d.pageSize, func(piece []ckpt.PageRun, buf []byte) ([]byte, []ckpt.PageRun, error) {
		return d.read(m, piece, buf)
	})
	d.pieceBufs <- buf
	if err != nil {
		q.send(dumpItem{err: err})
		return false
	}
	return len(kept) == 0 || q.send(dumpItem{pages: d.pagesOf(m, kept), inFile: &r})
}

// sendWorkerRead has a worker read runs of m into dst, room of the page
// store, or (dst nil) into the page file, and sends the read to be waited
// for in its turn: the reads of private memory run on every core at once,
// and the records keep their order.
func (d *memoryDumper) sendWorkerRead(q dumpQueues, m *procfs.Mapping, runs []ckpt.PageRun, dst []byte) bool {
	r := &storeRead{pid: d.pid, m: m, runs: runs, buf: dst, copyBuf: -1, pageSize: d.pageSize, done: make(chan struct{})}
	if dst == nil {
		r.file, r.pieceBufs = d.file, d.pieceBufs
	}
	return d.dispatch(q, r)
}

// dispatch hands read r to a worker and sends it to be waited for.
func (d *memoryDumper) dispatch(q dumpQueues, r *storeRead) bool {
	select {
	case q.reads <- r:
	case <-q.stop:
		return false
	}
	return q.send(dumpItem{pages: ckpt.Pages{Pid: d.pid, VMAStart: r.m.Start}, pending: r})
}

// takeCopyBuf waits for the writer to hand back a copy buffer, and
// returns it made (touched) if it was not yet.
func (d *memoryDumper) takeCopyBuf(q dumpQueues) (int, bool) {
	var b int
	select {
	case b = <-q.free:
	case <-q.stop:
		return 0, false
	}
	if d.bufs[b] == nil {
		d.bufs[b] = kernelTouched(int(d.chunk * d.pageSize))
	}
	return b, true
}

// sendWorkerBufferRead has a worker read runs of m into a free copy
// buffer, waiting for the writer to hand one back, and sends the read to
// be waited for in its turn: the reads, and their checksums, run on every
// core while the image is written.
func (d *memoryDumper) sendWorkerBufferRead(q dumpQueues, m *procfs.Mapping, runs []ckpt.PageRun) bool {
	b, ok := d.takeCopyBuf(q)
	if !ok {
		return false
	}
	return d.dispatch(q, &storeRead{pid: d.pid, m: m, runs: runs, buf: d.bufs[b], copyBuf: b, pageSize: d.pageSize, done: make(chan struct{})})
}

// sendReadIntoBuffer reads runs of m into a free copy buffer on this
// goroutine (pages of a shared object, or compared with the parent
// image's, are read with the dumper's state), waiting for the writer to
// hand one back: the buffers bound the memory a dump without page store
// holds. A buffer that kept no page is free again at once.
func (d *memoryDumper) sendReadIntoBuffer(q dumpQueues, m *procfs.Mapping, runs []ckpt.PageRun) bool {
	b, ok := d.takeCopyBuf(q)
	if !ok {
		return false
	}
	data, kept, err := d.read(m, runs, d.bufs[b])
	if err != nil {
		q.send(dumpItem{err: err})
		return false
	}
	if len(kept) == 0 {
		q.free <- b
		return true
	}
	// The checksum is computed here, beside the reads, not by the writer
	// the records wait for.
	return q.send(dumpItem{pages: d.pagesOf(m, kept), data: data, crc: ckpt.PayloadChecksum(0, data), buf: b})
}

// pagesOf is the pages record of runs of m, read by the reader: pages of
// a shared object count from its start.
func (d *memoryDumper) pagesOf(m *procfs.Mapping, runs []ckpt.PageRun) ckpt.Pages {
	return ckpt.Pages{Pid: d.pid, VMAStart: m.Start, Runs: runs, ShmemObject: d.shmemFile != nil}
}

// awaitStoreRead waits for a worker's read, in the order the reads were
// sent so that the records keep theirs, and says whether it kept any page:
// a chunk of zeros has no record.
func (d *memoryDumper) awaitStoreRead(ctx context.Context, r *storeRead) (bool, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if r.err != nil {
		return false, r.err
	}
	atomic.AddUint64(&d.stats.BytesRead, runsCount(r.runs)*d.pageSize)
	return len(r.kept) > 0, nil
}

// writeItem writes one item of dumpAll's reader into the image, each kind
// as the place of its payload allows (dumpItem), and hands a copy buffer
// back to the reader once written.
func (d *memoryDumper) writeItem(w *ckpt.Writer, mmRef ckpt.Objref, it *dumpItem, free chan<- int) error {
	switch {
	case it.err != nil:
		return it.err
	case it.vma != nil:
		deps := []ckpt.Objref{mmRef}
		if ref, ok := d.memfds[it.vma.Start]; ok {
			it.vma.Memfd = ref
			deps = append(deps, ref)
		}
		return w.Write(ckpt.TypeVMA, 0, deps, it.vma)
	case it.cow:
		return d.writeFromCopy(w, mmRef, it)
	case it.inFile != nil:
		d.stats.PagesStored += it.pages.Count()
		if d.progress != nil {
			d.progress(int64(atomic.LoadUint64(&d.stats.BytesRead)), d.expect)
		}
		r := it.inFile
		return w.WriteFileRange(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, d.file.f, r.off, r.n, r.crc)
	case it.pieces != nil:
		return d.writePieces(w, mmRef, it)
	case it.ranges != nil:
		d.stats.PagesStored += it.pages.Count()
		if d.progress != nil {
			d.progress(int64(atomic.LoadUint64(&d.stats.BytesRead)), d.expect)
		}
		return w.WriteFileRanges(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, d.pre.file.f, it.ranges)
	default:
		d.stats.PagesStored += it.pages.Count()
		if d.progress != nil {
			d.progress(int64(atomic.LoadUint64(&d.stats.BytesRead)), d.expect)
		}
		err := w.WriteChecksummed(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, it.data, it.crc)
		free <- it.buf
		return err
	}
}

// writeFromCopy writes a pages record whose payload the image asks for
// after the thaw, read then from the copy-on-write copy. The payload's
// reader holds only what it needs, not the item.
func (d *memoryDumper) writeFromCopy(w *ckpt.Writer, mmRef ckpt.Objref, it *dumpItem) error {
	d.stats.PagesStored += it.pages.Count()
	d.stats.PagesCopyOnWrite += it.pages.Count()
	mem, start, runs, size, pageSize := d.cowMem, it.pages.VMAStart, it.pages.Runs, it.size, d.pageSize
	if bufs := d.copyBufs; bufs != nil {
		return w.WriteDeferredPayload(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, it.size, func(pw io.Writer) error {
			// A buffer per payload being read at once.
			buf := bufs.take()
			defer bufs.put(buf)
			for _, piece := range splitRuns(runs, copyPiecePages) {
				n := runsCount(piece) * pageSize
				if err := readRunsAt(mem, buf[:n], start, piece, pageSize); err != nil {
					return fmt.Errorf("the copy-on-write copy: %w", err)
				}
				if _, err := pw.Write(buf[:n]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return w.WriteDeferredPayload(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, it.size, func(pw io.Writer) error {
		// Through /proc/PID/mem, not process_vm_readv: that pins
		// the pages, and pinning a page the copy shares with the
		// process makes the kernel copy it first.
		buf := make([]byte, size)
		if err := readRunsAt(mem, buf, start, runs, pageSize); err != nil {
			return fmt.Errorf("the copy-on-write copy: %w", err)
		}
		_, err := pw.Write(buf)
		return err
	})
}

// writePieces writes a pages record whose payload stays where it is, in
// memory that outlives the image's writing: the image refers to the
// pieces rather than copying them.
func (d *memoryDumper) writePieces(w *ckpt.Writer, mmRef ckpt.Objref, it *dumpItem) error {
	d.stats.PagesStored += it.pages.Count()
	if d.progress != nil {
		d.progress(int64(atomic.LoadUint64(&d.stats.BytesRead)), d.expect)
	}
	pieces := it.pieces
	return w.WriteDeferredPayload(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &it.pages, it.size, func(pw io.Writer) error {
		for _, p := range pieces {
			if _, err := pw.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// storeRead is one chunk of pages a worker reads into the page store
// (readPrivate), and what it read once done is closed.
type storeRead struct {
	pid      int
	m        *procfs.Mapping
	runs     []ckpt.PageRun
	buf      []byte
	pageSize uint64
	done     chan struct{}
	data     []byte
	kept     []ckpt.PageRun
	err      error
	// file, if set, is the page file to read into instead of buf,
	// through one of pieceBufs; inFile is where the pages went.
	file      *pageFile
	pieceBufs chan []byte
	inFile    *fileRange
	// copyBuf, if not -1, is the copy buffer buf is, handed back once
	// written; crc is then the checksum of data.
	copyBuf int
	crc     uint32
}

// candidates sets d.runs to the pages of m worth storing, from pagemap (a
// mapping pre-copy tracks goes through preCopy.readMapping instead). A shared
// anonymous object is stored whole (all zero pages skipped) with
// the first VMA that maps it, read through /proc/PID/map_files: a page only
// another process touched is not present here, and reading the object
// there does not fault holes in. Its pages are counted from the object's
// start: the VMA may map only part of it, and other VMAs other parts.
func (d *memoryDumper) candidates(m *procfs.Mapping) error {
	d.runs, d.guards = d.runs[:0], d.guards[:0]
	npages := (m.End - m.Start) / d.pageSize
	d.closeShmem()
	if d.droppable(m) || socketMapped(m) != 0 {
		// A socket's rings are the socket's: the frames in them are
		// not kept.
		return nil
	}
	if m.Shared && m.Kind == procfs.KindAnon {
		if d.shmemDone[m.Inode] {
			return nil
		}
		d.shmemDone[m.Inode] = true
		f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", d.pid, m.Start, m.End))
		if err != nil {
			return fmt.Errorf("shared memory at %#x-%#x: %w", m.Start, m.End, err)
		}
		d.shmemFile = f
		if d.shmemSize, d.runs, err = objectRuns(f, m, d.pageSize, d.runs); err != nil {
			return fmt.Errorf("shared memory at %#x-%#x: %w", m.Start, m.End, err)
		}
		return nil
	}
	if d.scanAnonymous(m) {
		d.addParentPages(m, npages)
		return nil
	}
	for first := uint64(0); first < npages; first += chunkPages {
		n := min(chunkPages, npages-first)
		start := m.Start + first*d.pageSize
		if cap(d.entries) < int(n) {
			d.entries = make([]uint64, chunkPages)
		}
		entries, err := procfs.ReadPagemap(d.pagemap, start, start+n*d.pageSize, d.entries[:n])
		if err != nil {
			return fmt.Errorf("pagemap of %#x-%#x: %w", m.Start, m.End, err)
		}
		fromCopy := d.fromCopy(m)
		for i, e := range entries {
			if procfs.PagemapEntry(e).Guard() {
				d.guards = addPage(d.guards, first+uint64(i))
				continue
			}
			if !wantPage(m, procfs.PagemapEntry(e)) {
				continue
			}
			if fromCopy && d.zeroPFN != 0 && procfs.PagemapEntry(e).PFN() == d.zeroPFN {
				continue // read but never written: zeros
			}
			d.runs = addPage(d.runs, first+uint64(i))
		}
	}
	d.addParentPages(m, npages)
	return nil
}

// scanAnonymous sets d.runs and d.guards for private anonymous mapping m
// from PAGEMAP_SCAN, and says whether it did: where pagemap gives an entry
// a page to go over (6 ms a GiB here, 31 ms for 4 GiB, before the first
// page is read), the scan gives a region for each run of pages alike (well
// under 1 ms a GiB). A sparse mapping costs what it holds, not its size.
// Zero pages (the shared zero page, mapped by a read) are left out: they
// would read as zeros. It does nothing for other mappings, where whether a
// page is the file's takes a look at every page either way, or when the
// kernel lacks the ioctl or guard pages (PageGuard): then pagemap does it.
func (d *memoryDumper) scanAnonymous(m *procfs.Mapping) bool {
	if !d.scan || !d.guardCategory || m.Shared || (m.Kind != procfs.KindAnon && m.Kind != procfs.KindHeap && m.Kind != procfs.KindStack) {
		return false
	}
	// A large mapping is scanned in parts, one per core: 4 GiB took 9.7
	// ms on one.
	found := inParts(m.Start, m.End, d.pageSize, chunkPages, d.regions, func(from, to uint64, regions []sys.PageRegion) scanned {
		var f scanned
		f.scan(d.pagemap, m, from, to, d.pageSize, regions)
		return f
	})
	d.runs, d.guards = d.runs[:0], d.guards[:0]
	var err error
	for _, f := range found {
		for _, r := range f.runs {
			d.runs = addRun(d.runs, r.Index, r.Count)
		}
		for _, r := range f.guards {
			d.guards = addRun(d.guards, r.Index, r.Count)
		}
		err = cmp.Or(err, f.err)
	}
	if err != nil {
		// pagemap says what is wrong, or does it instead.
		d.scan = !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL)
		d.runs, d.guards = d.runs[:0], d.guards[:0]
		return false
	}
	return true
}

// objectRuns finds the size of shared memory object f, which m maps, and
// the runs of its pages that hold data (SEEK_DATA/SEEK_HOLE: the holes are
// zeros), counted from its start, appended to runs. The size covers m even
// if the object was truncated under it.
func objectRuns(f *os.File, m *procfs.Mapping, ps uint64, runs []ckpt.PageRun) (uint64, []ckpt.PageRun, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, nil, os.NewSyscallError("fstat", err)
	}
	size := max((uint64(st.Size)+ps-1)/ps*ps, m.Offset+m.End-m.Start)
	for off := int64(0); uint64(off) < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return 0, nil, os.NewSyscallError("lseek", err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return 0, nil, os.NewSyscallError("lseek", err)
		}
		first, end := uint64(data)/ps, min((uint64(hole)+ps-1)/ps, size/ps)
		if end > first {
			runs = addRun(runs, first, end-first)
		}
		off = int64(end * ps)
	}
	return size, runs, nil
}

// inParts cuts [start, end), pages of ps bytes, in one part per core, each
// of at least minPages pages (or one part), and runs part on all of them
// at once: the first on this goroutine with regions, the others with room
// of their own. It returns their results in address order.
func inParts[T any](start, end, ps, minPages uint64, regions []sys.PageRegion, part func(from, to uint64, regions []sys.PageRegion) T) []T {
	pages := (end - start) / ps
	parts := max(1, min(uint64(runtime.NumCPU()), pages/minPages))
	per := (pages + parts - 1) / parts
	results := make([]T, parts)
	var wg sync.WaitGroup
	for i := uint64(1); i < parts; i++ {
		from := start + i*per*ps
		to := min(end, from+per*ps)
		if from >= to {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = part(from, to, make([]sys.PageRegion, len(regions)))
		}()
	}
	results[0] = part(start, min(end, start+per*ps), regions)
	wg.Wait()
	return results
}

// scanned is what PAGEMAP_SCAN found of part of a private anonymous
// mapping: the pages to store and the guard pages, by index in it.
type scanned struct {
	runs, guards []ckpt.PageRun
	err          error
}

func (f *scanned) scan(pagemap *os.File, m *procfs.Mapping, from, to, ps uint64, regions []sys.PageRegion) {
	q := sys.PagemapQuery{CategoryAnyofMask: sys.PagePresent | sys.PageSwapped,
		ReturnMask: sys.PagePresent | sys.PageSwapped | sys.PagePFNZero | sys.PageGuard}
	f.err = sys.PagemapWalk(int(pagemap.Fd()), from, to, q, regions, func(r sys.PageRegion) {
		first, end := (r.Start-m.Start)/ps, (r.End-m.Start)/ps
		switch {
		case r.Categories&sys.PageGuard != 0:
			f.guards = addRun(f.guards, first, end-first)
		case r.Categories&(sys.PagePFNZero|sys.PagePresent) == sys.PagePFNZero|sys.PagePresent:
		default:
			f.runs = addRun(f.runs, first, end-first)
		}
	})
}

// addParentPages adds to d.runs the pages of m that the parent chain stores
// but that are not candidates now (dropped, or never touched again): they
// read as zeros here and must be stored so, or a restart would take the
// parent's stale contents.
func (d *memoryDumper) addParentPages(m *procfs.Mapping, npages uint64) {
	if d.parent == nil {
		return
	}
	inParent := d.parent.Range(d.pid, m.Start, m.End)
	if len(inParent) == 0 {
		return
	}
	want := make([]bool, npages)
	for _, r := range d.runs {
		for i := r.Index; i < r.Index+r.Count; i++ {
			want[i] = true
		}
	}
	for _, addr := range inParent {
		want[(addr-m.Start)/d.pageSize] = true
	}
	for _, r := range d.guards {
		// Made a guard page since: it holds nothing, and the
		// restart's guard install drops the parent's page.
		for i := r.Index; i < r.Index+r.Count; i++ {
			want[i] = false
		}
	}
	d.runs = d.runs[:0]
	for idx, w := range want {
		if !w {
			continue
		}
		d.runs = addPage(d.runs, uint64(idx))
	}
}

// read copies the pages of runs (at most d.chunk) with process_vm_readv
// and returns the non-zero ones, compacted, with their runs.
func (d *memoryDumper) read(m *procfs.Mapping, runs []ckpt.PageRun, buf []byte) ([]byte, []ckpt.PageRun, error) {
	buf = buf[:runsCount(runs)*d.pageSize]
	if d.shmemFile != nil {
		// Runs of a shared object are read from the object, counted
		// from its start.
		if err := readRunsAt(d.shmemFile, buf, 0, runs, d.pageSize); err != nil {
			return nil, nil, fmt.Errorf("reading shared memory %#x-%#x: %w", m.Start, m.End, err)
		}
	} else if err := readProcess(d.pid, m, buf, runs, d.pageSize); err != nil {
		return nil, nil, fmt.Errorf("reading %#x-%#x: %w", m.Start, m.End, err)
	}
	// Both the goroutine reading and the one writing the image count.
	atomic.AddUint64(&d.stats.BytesRead, uint64(len(buf)))
	return compactPages(buf, runs, d.pageSize, func(idx uint64, page []byte) (bool, error) {
		addr := m.Start + idx*d.pageSize
		if d.parent == nil || d.shmemFile != nil || !d.parent.Has(d.pid, addr) {
			return !allZero(page), nil
		}
		if err := d.parent.ReadPage(d.pid, addr, d.pbuf); err != nil {
			return false, fmt.Errorf("parent image: %w", err)
		}
		// Changed, even if to zeros: stored; unchanged: the parent has it.
		return !bytes.Equal(page, d.pbuf), nil
	})
}

// readPrivate is read for a mapping read with process_vm_readv into an
// image without parent, with nothing from the dumper: several run at once.
func readPrivate(pid int, m *procfs.Mapping, runs []ckpt.PageRun, buf []byte, pageSize uint64) ([]byte, []ckpt.PageRun, error) {
	buf = buf[:runsCount(runs)*pageSize]
	if err := readProcess(pid, m, buf, runs, pageSize); err != nil {
		return nil, nil, fmt.Errorf("reading %#x-%#x: %w", m.Start, m.End, err)
	}
	return compactPages(buf, runs, pageSize, func(_ uint64, page []byte) (bool, error) {
		return !allZero(page), nil
	})
}

// remoteRuns is where runs of m are in the process's address space.
func remoteRuns(m *procfs.Mapping, runs []ckpt.PageRun, pageSize uint64) []unix.RemoteIovec {
	remote := make([]unix.RemoteIovec, 0, len(runs))
	for _, r := range runs {
		remote = append(remote, unix.RemoteIovec{Base: uintptr(m.Start + r.Index*pageSize), Len: int(r.Count * pageSize)})
	}
	return remote
}

// compactPages moves the pages of buf (those of runs, in order) that keep
// says to store to its front, and returns them with their runs.
func compactPages(buf []byte, runs []ckpt.PageRun, pageSize uint64, keep func(idx uint64, page []byte) (bool, error)) ([]byte, []ckpt.PageRun, error) {
	var kept []ckpt.PageRun
	out, pos := 0, 0
	for _, r := range runs {
		for i := uint64(0); i < r.Count; i++ {
			page := buf[pos : pos+int(pageSize)]
			pos += int(pageSize)
			idx := r.Index + i
			if ok, err := keep(idx, page); err != nil {
				return nil, nil, err
			} else if !ok {
				continue
			}
			if k := len(kept); k > 0 && kept[k-1].Index+kept[k-1].Count == idx {
				kept[k-1].Count++
			} else {
				kept = append(kept, ckpt.PageRun{Index: idx, Count: 1})
			}
			if out != pos-int(pageSize) {
				copy(buf[out:], page)
			}
			out += int(pageSize)
		}
	}
	return buf[:out], kept, nil
}

// readRunsAt fills buf with the pages of runs, page index i being at
// offset base + i*pageSize of r.
func readRunsAt(r io.ReaderAt, buf []byte, base uint64, runs []ckpt.PageRun, pageSize uint64) error {
	pos := 0
	for _, run := range runs {
		n := int(run.Count * pageSize)
		at := base + run.Index*pageSize
		if _, err := r.ReadAt(buf[pos:pos+n], int64(at)); err != nil {
			return fmt.Errorf("reading %#x: %w", at, err)
		}
		pos += n
	}
	return nil
}

// readProcess fills buf with the pages of runs of m, read from process
// pid: with process_vm_readv, or where m is not readable (PROT_NONE), whose
// protection that call keeps to, through /proc/PID/mem, which reads past
// it as a debugger does.
func readProcess(pid int, m *procfs.Mapping, buf []byte, runs []ckpt.PageRun, pageSize uint64) error {
	if m.Prot&procfs.ProtRead != 0 {
		return readRemote(pid, buf, remoteRuns(m, runs, pageSize))
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	return readRunsAt(f, buf, m.Start, runs, pageSize)
}

// readRemote fills local from the remote iovecs, IOV_MAX at a time,
// resuming after partial transfers.
func readRemote(pid int, local []byte, remote []unix.RemoteIovec) error {
	const iovMax = 1024
	off := 0
	for len(remote) > 0 {
		batch := remote[:min(iovMax, len(remote))]
		want := 0
		for _, r := range batch {
			want += r.Len
		}
		n, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: (*byte)(unsafe.Pointer(&local[off])), Len: uint64(want)}}, batch, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("process_vm_readv", err)
		}
		if n == 0 {
			return fmt.Errorf("process_vm_readv: no progress at %#x", batch[0].Base)
		}
		off += n
		// Drop what was transferred, splitting a partially read iovec.
		for n > 0 {
			if n >= remote[0].Len {
				n -= remote[0].Len
				remote = remote[1:]
				continue
			}
			remote[0].Base += uintptr(n)
			remote[0].Len -= n
			n = 0
		}
	}
	return nil
}

// addPage adds page idx, past every page of runs, to runs.
func addPage(runs []ckpt.PageRun, idx uint64) []ckpt.PageRun {
	return addRun(runs, idx, 1)
}

// addRun adds count pages from idx, past every page of runs, to runs.
func addRun(runs []ckpt.PageRun, idx, count uint64) []ckpt.PageRun {
	if k := len(runs); k > 0 && runs[k-1].Index+runs[k-1].Count == idx {
		runs[k-1].Count += count
		return runs
	}
	return append(runs, ckpt.PageRun{Index: idx, Count: count})
}

func runsCount(runs []ckpt.PageRun) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.Count
	}
	return n
}

// splitRuns cuts runs into groups of at most max pages.
func splitRuns(runs []ckpt.PageRun, max uint64) [][]ckpt.PageRun {
	var out [][]ckpt.PageRun
	var cur []ckpt.PageRun
	var n uint64
	for _, r := range runs {
		for r.Count > 0 {
			take := min(r.Count, max-n)
			cur = append(cur, ckpt.PageRun{Index: r.Index, Count: take})
			n += take
			r.Index += take
			r.Count -= take
			if n == max {
				out = append(out, cur)
				cur, n = nil, 0
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

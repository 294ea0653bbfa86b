package checkpoint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// Image is a checkpoint held in memory: the frozen phase only copies the
// process's state into memory touched before the freeze, and the image is
// written out (WriteTo) or restarted (Reader) afterwards, while the process
// runs again. Several images can be kept at once, to roll a process back to
// an earlier one.
type Image struct {
	chunks [][]byte
	// ranges are the chunks held in the page file, by index: their
	// chunk is nil.
	ranges map[int]fileRange
	file   *pageFile
	size   int64
	// background is work the checkpoint left running after it returned
	// (a pre-copy letting its write protection go), waited for by Close.
	background sync.WaitGroup
	// Stats tells how long the process was frozen and how long the whole
	// checkpoint took.
	Stats Stats
}

// Size is the image's length in bytes.
func (im *Image) Size() int64 { return im.size }

// Close lets go of the memory file the image's pages are in, if any,
// before the image itself is dropped; the image cannot be read after.
func (im *Image) Close() error {
	im.background.Wait()
	err := im.file.Close()
	im.file, im.chunks, im.ranges = nil, nil, nil
	return err
}

// WriteTo writes the image to w. The pages held in the page file go from
// there to a file w writes to inside the kernel (sendfile), without
// passing through crsub's memory. The tree runs meanwhile, and comes
// first: the writing yields the CPU to it (sys.Yielding).
func (im *Image) WriteTo(w io.Writer) (n int64, err error) {
	fault.Phase("writing out the image")
	sys.Yielding(func() { n, err = im.writeTo(w) })
	return n, err
}

func (im *Image) writeTo(w io.Writer) (int64, error) {
	var n int64
	var buf []byte
	for i, c := range im.chunks {
		if r, ok := im.ranges[i]; ok {
			k, err := im.writeRange(w, r, &buf)
			n += k
			if err != nil {
				return n, err
			}
			continue
		}
		k, err := w.Write(c)
		n += int64(k)
		if err != nil {
			return n, err
		}
		if k < len(c) {
			// A writer that stops short without saying why would leave
			// an image cut short that looks complete to its writer.
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}

// writeRange writes range r of the page file to w: with sendfile where w
// is a file that takes it, or else through buf (made on first use).
func (im *Image) writeRange(w io.Writer, r fileRange, buf *[]byte) (int64, error) {
	var n int64
	if f, ok := w.(interface{ Fd() uintptr }); ok && !fault.Enabled {
		// A file opened to append, or of a kind sendfile cannot
		// write, refuses it before writing anything (EINVAL).
		off := r.off
		for n < r.n {
			k, err := sys.Sendfile(int(f.Fd()), int(im.file.f.Fd()), &off, int(min(r.n-n, 1<<30)))
			if err != nil && n == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)) {
				break
			}
			if err != nil {
				return n, err
			}
			if k == 0 {
				return n, io.ErrUnexpectedEOF
			}
			n += int64(k)
		}
		if n == r.n {
			return n, nil
		}
	}
	if *buf == nil {
		*buf = make([]byte, 1<<20)
	}
	k, err := io.CopyBuffer(struct{ io.Writer }{w}, io.NewSectionReader(im.file.f, r.off+n, r.n-n), *buf)
	return n + k, err
}

// Reader returns a reader of the image, for restart.Restart. Each call
// starts from the beginning; readers do not consume the image.
func (im *Image) Reader() io.Reader {
	readers := make([]io.Reader, len(im.chunks))
	for i, c := range im.chunks {
		if r, ok := im.ranges[i]; ok {
			readers[i] = io.NewSectionReader(im.file.f, r.off, r.n)
			continue
		}
		readers[i] = bytes.NewReader(c)
	}
	return io.MultiReader(readers...)
}

// memoryWriter collects an image in chunks. Its memory is prepared before
// the freeze, so the frozen phase does not pay first-touch page faults:
// room for the records, and a page store, sized from the tree's private
// memory, that the memory dumper reads pages straight into.
type memoryWriter struct {
	im *Image
	// file is the page store the pages go into, or where no memory
	// file could be made (noFile says why), pages.
	file   *pageFile
	noFile error
	pages  *pageStore
	// resident is the tree's private memory as the writer was sized
	// for it (treeResidentEstimate): reading it again costs a walk of
	// every page table.
	resident int64
	spare    [][]byte // touched, unused chunks
	tail     []byte   // the last chunk written, which may have room left
	// deferred are payloads to produce after the freeze, each standing in
	// for the placeholder chunk at its index; sealed says the last chunk
	// is such a placeholder.
	deferred []deferredPayload
	sealed   bool
}

type deferredPayload struct {
	at   int
	n    int64
	fill func(io.Writer) error
}

const imageChunk = 8 << 20

// newMemoryWriter prepares room for about pages bytes of pages and
// records bytes of everything else.
func newMemoryWriter(pages, records int64) *memoryWriter {
	w := &memoryWriter{im: &Image{ranges: map[int]fileRange{}}}
	if pages > 0 {
		w.file, w.noFile = newPageFile(pages)
		if w.noFile != nil {
			w.pages = newPageStore(int(pages))
		}
		w.im.file = w.file
	}
	for n := int64(0); n < records; n += imageChunk {
		w.spare = append(w.spare, touched(imageChunk)[:0])
	}
	return w
}

func (w *memoryWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		last := len(w.im.chunks) - 1
		if last < 0 || w.sealed || len(w.im.chunks[last]) == cap(w.im.chunks[last]) {
			var c []byte
			switch {
			case w.sealed && len(w.tail) < cap(w.tail):
				// A placeholder ended the last chunk: the next one goes
				// on in the room it left. A fresh chunk each time would
				// allocate (and clear) 8 MiB per pages record while the
				// process is frozen.
				c = w.tail[len(w.tail):]
			case len(w.spare) > 0:
				c, w.spare = w.spare[0], w.spare[1:]
			default:
				c = make([]byte, 0, imageChunk)
			}
			w.sealed = false
			w.im.chunks = append(w.im.chunks, c)
			last++
		}
		c := w.im.chunks[last]
		k := copy(c[len(c):cap(c)], b)
		w.im.chunks[last] = c[:len(c)+k]
		w.tail = w.im.chunks[last]
		b = b[k:]
	}
	w.im.size += int64(n)
	return n, nil
}

// closeLater runs close in the background; the image's Close waits for it.
func (w *memoryWriter) closeLater(close func()) {
	w.im.background.Add(1)
	go func() {
		defer w.im.background.Done()
		sys.Yielding(close)
	}()
}

// pagesFile returns the image's page file, made now if the image was sized
// for no pages (a pre-copy keeps its copies there).
func (w *memoryWriter) pagesFile() (*pageFile, error) {
	if w.file == nil {
		f, err := newPageFile(0)
		if err != nil {
			return nil, err
		}
		w.file, w.im.file = f, f
	}
	return w.file, nil
}

// TakeRange holds the place of n bytes at off of the page file, where
// they stay: f is the page file's.
func (w *memoryWriter) TakeRange(f *os.File, off, n int64) {
	w.im.ranges[len(w.im.chunks)] = fileRange{off: off, n: n}
	w.im.chunks = append(w.im.chunks, nil)
	w.sealed = true
	w.im.size += n
}

// Defer holds the place of n bytes that fill produces in resolve.
func (w *memoryWriter) Defer(n int64, fill func(io.Writer) error) {
	w.deferred = append(w.deferred, deferredPayload{at: len(w.im.chunks), n: n, fill: fill})
	w.im.chunks = append(w.im.chunks, nil)
	w.sealed = true
	w.im.size += n
}

// resolve produces the deferred payloads in place. Their large pieces are
// taken as they are, not copied: they are pages copied before the freeze,
// which nothing changes any more, or pages read from a copy-on-write copy.
// Payloads are independent of each other, so they are produced on every
// core (reading a copy-on-write copy is mostly the kernel's time).
func (w *memoryWriter) resolve() error {
	if len(w.deferred) == 0 {
		return nil
	}
	cols := make([]*collector, len(w.deferred))
	errs := make([]error, len(w.deferred))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				col := &collector{pageFile: w.file}
				if err := w.deferred[i].fill(col); err != nil {
					errs[i] = err
				} else if col.err != nil {
					errs[i] = col.err
				} else if col.n != w.deferred[i].n {
					errs[i] = fmt.Errorf("a deferred payload gave %d bytes, not %d", col.n, w.deferred[i].n)
				}
				cols[i] = col
			}
		}()
	}
	for i := range w.deferred {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var chunks [][]byte
	ranges := map[int]fileRange{}
	d := 0
	for i, c := range w.im.chunks {
		if d < len(w.deferred) && w.deferred[d].at == i {
			for j, c := range cols[d].chunks {
				if r, ok := cols[d].ranges[j]; ok {
					ranges[len(chunks)] = r
				}
				chunks = append(chunks, c)
			}
			d++
			continue
		}
		if r, ok := w.im.ranges[i]; ok {
			ranges[len(chunks)] = r
		}
		chunks = append(chunks, c)
	}
	w.im.chunks, w.im.ranges, w.deferred = chunks, ranges, nil
	return nil
}

// collector keeps what is written to it: large pieces by reference,
// small ones copied (callers reuse small buffers, such as a checksum's),
// and ranges of the image's page file as ranges.
type collector struct {
	chunks [][]byte
	// ranges are the chunks held in pageFile, by index: their chunk is
	// nil.
	ranges   map[int]fileRange
	pageFile *pageFile
	n        int64
	err      error // a range of another file that could not be read
}

// TakeRange keeps n bytes at off of f: by reference if f is the image's
// page file, else read.
func (c *collector) TakeRange(f *os.File, off, n int64) {
	c.n += n
	if c.pageFile == nil || f != c.pageFile.f {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil && c.err == nil {
			c.err = fmt.Errorf("%d bytes at %d of %s: %w", n, off, f.Name(), err)
		}
		c.chunks = append(c.chunks, b)
		return
	}
	if c.ranges == nil {
		c.ranges = map[int]fileRange{}
	}
	c.ranges[len(c.chunks)] = fileRange{off: off, n: n}
	c.chunks = append(c.chunks, nil)
}

func (c *collector) Write(b []byte) (int, error) {
	if len(b) >= 4096 {
		c.chunks = append(c.chunks, b)
	} else {
		c.chunks = append(c.chunks, append([]byte(nil), b...))
	}
	c.n += int64(len(b))
	return len(b), nil
}

// Snapshot checkpoints the process tree rooted at pid into memory. The
// tree is frozen only while its state is copied into memory prepared
// beforehand; then it is killed or, with opts.LeaveRunning, let go, and
// the image can be written at leisure. With the default (kill) the caller
// owns the only copy of the process: write the image before relying on it.
// opts.Commit is not used. A tree whose image would not fit in the memory
// available is refused with a *MemoryError (Checkpoint needs no room).
func Snapshot(ctx context.Context, pid int, opts Options) (*Image, error) {
	resident := treeResidentEstimate(pid)
	if err := roomFor(pid, resident); err != nil {
		return nil, err
	}
	var expect int64
	if opts.PreCopy == 0 && !opts.CopyOnWrite {
		// Pages copied before the freeze, or read from a copy-on-write
		// copy after it, are taken as they are.
		expect = resident
		// Room for what the estimate missed and for the ends of slabs a
		// chunk did not fit in: a chunk that finds no room is copied into
		// memory the freeze has to fault in.
		expect += int64(chunkFor(uint64(expect))*uint64(os.Getpagesize())) + expect/32
	}
	start := time.Now()
	w := newMemoryWriter(expect, 4<<20)
	w.resident = resident
	prepared := time.Since(start)
	opts.Commit = nil
	st, err := Checkpoint(ctx, pid, w, opts)
	if err != nil {
		w.im.Close()
		return nil, err
	}
	st.Prepare += prepared
	st.Total += prepared
	if err := w.resolve(); err != nil {
		w.im.Close()
		return nil, err
	}
	switch {
	case w.file != nil:
		st.PageStore = "memory file"
		w.file.trim()
	case w.pages != nil:
		st.PageStore = fmt.Sprintf("touched memory (no memory file: %v)", w.noFile)
	}
	w.im.Stats = *st
	// The image keeps what it refers to; the rest goes.
	w.spare, w.pages = nil, nil
	return w.im, nil
}

// MemoryError is a Snapshot refused because the image would not fit in
// the memory available: an image kept in memory is about as large as the
// tree's private memory, and running out of memory on the way could have
// the kernel kill the tree itself. Checkpoint, writing the image while the
// tree is frozen, needs no such room.
type MemoryError struct {
	Pid             int
	Need, Available int64 // bytes
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("an in-memory image of pid %d needs about %d MiB, and %d MiB of memory are available", e.Pid, e.Need>>20, e.Available>>20)
}

// roomFor says whether an image of need bytes fits in the memory available
// (MemAvailable, an eighth of it kept for everything else).
func roomFor(pid int, need int64) error {
	available, err := procfs.MemAvailable()
	if err != nil {
		return nil // not known: tried anyway
	}
	return fits(pid, need, available)
}

func fits(pid int, need, available int64) error {
	if need > available-available/8 {
		return &MemoryError{Pid: pid, Need: need, Available: available}
	}
	return nil
}

// treeResidentEstimate is residentEstimate summed over the tree rooted at
// pid, as it is now.
func treeResidentEstimate(pid int) int64 {
	var total int64
	for _, p := range listTree(pid) {
		total += residentEstimate(p)
	}
	return total
}

// residentEstimate is how many bytes of private memory pid holds now
// (smaps_rollup's Anonymous), to prepare about as much for its image.
func residentEstimate(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Anonymous:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

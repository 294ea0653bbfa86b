package checkpoint

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// chunkPages bounds one pages record (and the copy buffer): 16 MiB.
const chunkPages = 4096

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
	}
	return ckpt.VMAAnon
}

// memoryDumper copies one process's memory into the image.
type memoryDumper struct {
	pid      int
	pageSize uint64
	pagemap  *os.File
	entries  []uint64
	buf      []byte // chunkPages pages, touched before the freeze
	zero     []byte
	stats    *Stats
}

func newMemoryDumper(stats *Stats) (*memoryDumper, error) {
	ps := uint64(os.Getpagesize())
	d := &memoryDumper{pageSize: ps, buf: make([]byte, chunkPages*ps), zero: make([]byte, ps), stats: stats}
	// Touch the buffer now: first-touch page faults are slow on this kind
	// of machine and must not be paid while the target is frozen.
	for i := 0; i < len(d.buf); i += int(ps) {
		d.buf[i] = 1
	}
	return d, nil
}

// open points the dumper at process pid.
func (d *memoryDumper) open(pid int) error {
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return err
	}
	d.pid, d.pagemap = pid, pm
	return nil
}

// Close lets go of the current process's pagemap.
func (d *memoryDumper) Close() error {
	if d.pagemap == nil {
		return nil
	}
	err := d.pagemap.Close()
	d.pagemap = nil
	return err
}

// vmaRecord describes a mapping; file mappings are named by identity so a
// restart can refuse a file that changed.
func vmaRecord(pid int, m *procfs.Mapping) (*ckpt.VMA, error) {
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
		id, err := identity(m.Path)
		if err != nil {
			return nil, fmt.Errorf("mapping %#x-%#x of %s: %w", m.Start, m.End, m.Path, err)
		}
		if id.Inode != m.Inode || id.Dev != m.Dev {
			return nil, fmt.Errorf("mapping %#x-%#x of %s: the path now names another file (inode %d, mapped inode %d)", m.Start, m.End, m.Path, id.Inode, m.Inode)
		}
		v.File = &id
		v.Pgoff = m.Offset
	case m.Kind == procfs.KindFile && m.Deleted:
		return nil, fmt.Errorf("mapping %#x-%#x of deleted file %s: not supported yet", m.Start, m.End, m.Path)
	case m.Kind == procfs.KindOther:
		return nil, fmt.Errorf("mapping %#x-%#x (%s): unsupported special mapping", m.Start, m.End, m.Path)
	default:
		v.Flags |= unix.MAP_ANONYMOUS
	}
	return v, nil
}

func identity(path string) (ckpt.FileIdentity, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ckpt.FileIdentity{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return ckpt.FileIdentity{Path: path, Dev: st.Dev, Inode: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano()}, nil
}

// wantPage says whether a page must be stored: memory that only this
// process holds. Clean file pages come back from their file; the all-zero
// check happens after reading.
func wantPage(m *procfs.Mapping, e procfs.PagemapEntry) bool {
	switch {
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

// dump writes a VMA record and the pages records holding its stored pages.
func (d *memoryDumper) dump(w *ckpt.Writer, mmRef ckpt.Objref, m *procfs.Mapping) error {
	v, err := vmaRecord(d.pid, m)
	if err != nil {
		return err
	}
	npages := (m.End - m.Start) / d.pageSize
	var candidates []ckpt.PageRun
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
		for i, e := range entries {
			if !wantPage(m, procfs.PagemapEntry(e)) {
				continue
			}
			idx := first + uint64(i)
			if k := len(candidates); k > 0 && candidates[k-1].Index+candidates[k-1].Count == idx {
				candidates[k-1].Count++
			} else {
				candidates = append(candidates, ckpt.PageRun{Index: idx, Count: 1})
			}
		}
	}
	if err := w.Write(ckpt.TypeVMA, 0, []ckpt.Objref{mmRef}, v); err != nil {
		return err
	}
	// Read candidates chunk by chunk, drop all-zero pages, emit the rest.
	for _, runs := range splitRuns(candidates, chunkPages) {
		data, kept, err := d.read(m, runs)
		if err != nil {
			return err
		}
		if len(kept) == 0 {
			continue
		}
		pg := ckpt.Pages{Pid: d.pid, VMAStart: m.Start, Runs: kept}
		d.stats.PagesStored += pg.Count()
		err = w.WriteWithPayload(ckpt.TypePages, 0, []ckpt.Objref{mmRef}, &pg, int64(len(data)), func(pw io.Writer) error {
			_, err := pw.Write(data)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// read copies the pages of runs (at most chunkPages) with process_vm_readv
// and returns the non-zero ones, compacted, with their runs.
func (d *memoryDumper) read(m *procfs.Mapping, runs []ckpt.PageRun) ([]byte, []ckpt.PageRun, error) {
	total := runsCount(runs)
	buf := d.buf[:total*d.pageSize]
	remote := make([]unix.RemoteIovec, 0, len(runs))
	for _, r := range runs {
		remote = append(remote, unix.RemoteIovec{Base: uintptr(m.Start + r.Index*d.pageSize), Len: int(r.Count * d.pageSize)})
	}
	if err := readRemote(d.pid, buf, remote); err != nil {
		return nil, nil, fmt.Errorf("reading %#x-%#x: %w", m.Start, m.End, err)
	}
	d.stats.BytesRead += uint64(len(buf))
	var kept []ckpt.PageRun
	out := 0
	pos := 0
	for _, r := range runs {
		for i := uint64(0); i < r.Count; i++ {
			page := buf[pos : pos+int(d.pageSize)]
			pos += int(d.pageSize)
			if bytes.Equal(page, d.zero) {
				continue
			}
			idx := r.Index + i
			if k := len(kept); k > 0 && kept[k-1].Index+kept[k-1].Count == idx {
				kept[k-1].Count++
			} else {
				kept = append(kept, ckpt.PageRun{Index: idx, Count: 1})
			}
			if out != pos-int(d.pageSize) {
				copy(buf[out:], page)
			}
			out += int(d.pageSize)
		}
	}
	return buf[:out], kept, nil
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

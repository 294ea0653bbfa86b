package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	PagemapPresent    = 1 << 63
	PagemapSwapped    = 1 << 62
	PagemapFileShared = 1 << 61 // file page or shared anonymous page
	PagemapGuard      = 1 << 58 // guard region (MADV_GUARD_INSTALL), Linux 6.15+
	PagemapUffdWP     = 1 << 57 // write-protected by userfaultfd
	PagemapExclusive  = 1 << 56 // page is mapped exclusively (not COW-shared)
	PagemapSoftDirty  = 1 << 55 // always 0 on kernels without CONFIG_MEM_SOFT_DIRTY
	PagemapPFNMask    = 1<<55 - 1
)

// PagemapEntry gives names to the bits of one pagemap entry.
type PagemapEntry uint64

func (e PagemapEntry) Present() bool    { return e&PagemapPresent != 0 }
func (e PagemapEntry) Swapped() bool    { return e&PagemapSwapped != 0 }
func (e PagemapEntry) FileShared() bool { return e&PagemapFileShared != 0 }
func (e PagemapEntry) UffdWP() bool     { return e&PagemapUffdWP != 0 }
func (e PagemapEntry) Guard() bool      { return e&PagemapGuard != 0 }
func (e PagemapEntry) Exclusive() bool  { return e&PagemapExclusive != 0 }
func (e PagemapEntry) SoftDirty() bool  { return e&PagemapSoftDirty != 0 }

// PFN returns the page frame number of a present page. It reads as 0 unless
// the reader has CAP_SYS_ADMIN.
func (e PagemapEntry) PFN() uint64 {
	if !e.Present() {
		return 0
	}
	return uint64(e) & PagemapPFNMask
}

// SwapType and SwapOffset locate a swapped-out page.
func (e PagemapEntry) SwapType() uint64 {
	if !e.Swapped() {
		return 0
	}
	return uint64(e) & 0x1f
}

func (e PagemapEntry) SwapOffset() uint64 {
	if !e.Swapped() {
		return 0
	}
	return (uint64(e) & PagemapPFNMask) >> 5
}

// UffdWPMarker says whether the entry is no page but the marker write
// protection by a userfaultfd leaves where there is none: a page never
// populated, or, in a file mapping, one dropped since (swap type 31,
// SWP_PTE_MARKER, with the PTE_MARKER_UFFD_WP bit). Reading the address
// faults in a page of zeros or the file's page. Without CAP_SYS_ADMIN the
// type and offset read as 0 and a marker passes for a swapped page.
func (e PagemapEntry) UffdWPMarker() bool {
	return e.Swapped() && e.SwapType() == 31 && e.SwapOffset()&1 != 0
}

// OpenPagemap opens /proc/PID/pagemap for ReadPagemap.
func OpenPagemap(pid int) (*os.File, error) {
	f, err := os.Open(pidPath(pid, "pagemap"))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// pagemapBatch bounds one pread so a huge range does not become one
// multi-second system call that cannot be interrupted between batches.
const pagemapBatch = 1 << 16 // entries (512 KiB)

// ReadPagemap returns the pagemap entries for the pages in [start, end),
// which must be page aligned, reusing buf when it is large enough. Pages
// beyond the task's user address space (such as [vsyscall]) read as 0, since
// the kernel ends the file there.
func ReadPagemap(f *os.File, start, end uint64, buf []uint64) ([]uint64, error) {
	ps := uint64(os.Getpagesize())
	if start%ps != 0 || end%ps != 0 || end < start {
		return nil, fmt.Errorf("%s: range %#x-%#x is not page aligned", f.Name(), start, end)
	}
	n := int((end - start) / ps)
	if cap(buf) < n {
		buf = make([]uint64, n)
	}
	buf = buf[:n]
	off := int64(start / ps * 8)
	for done := 0; done < n; {
		chunk := buf[done:min(n, done+pagemapBatch)]
		// Read straight into the caller's entries: pagemap is in native byte
		// order, so decoding would only copy.
		b := unsafe.Slice((*byte)(unsafe.Pointer(&chunk[0])), len(chunk)*8)
		got, err := f.ReadAt(b, off)
		if got%8 != 0 {
			return nil, fmt.Errorf("%s: read %d bytes at offset %d, not a whole number of entries", f.Name(), got, off)
		}
		if errors.Is(err, io.EOF) {
			clear(buf[done+got/8:])
			break
		}
		if err != nil {
			return nil, fmt.Errorf("pagemap: %w", err)
		}
		done += len(chunk)
		off += int64(len(b))
	}
	return buf, nil
}

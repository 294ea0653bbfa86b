package sys

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Userfaultfd write-protect tracking and the PAGEMAP_SCAN ioctl
// (include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h). Debian's
// headers and x/sys predate them, so the layouts are spelled out here.
const (
	// SysUserfaultfd is userfaultfd(2) on x86_64.
	SysUserfaultfd = 323
	// UffdUserModeOnly lets a process without CAP_SYS_PTRACE create a
	// userfaultfd whatever vm.unprivileged_userfaultfd says; asynchronous
	// write-protect faults are resolved before the mode matters.
	UffdUserModeOnly = 1

	uffdAPI                = 0xaa
	uffdFeatureWPAsync     = 1 << 15
	uffdioAPI              = 0xc018aa3f
	uffdioRegister         = 0xc020aa00
	uffdioUnregister       = 0x8010aa01
	uffdioWriteprotect     = 0xc018aa06
	uffdioRegisterModeWP   = 1 << 1
	uffdioWriteprotectMode = 1 << 0
	pagemapScan            = 0xc0606610
)

// PAGEMAP_SCAN flags and page categories.
const (
	ScanWPMatching   = 1 << 0 // write-protect the pages that match
	ScanCheckWPAsync = 1 << 1 // fail with EPERM on a range not registered for async write-protect

	PageWPAllowed = 1 << 0
	PageWritten   = 1 << 1
	PageFile      = 1 << 2
	PagePresent   = 1 << 3
	PageSwapped   = 1 << 4
	PagePFNZero   = 1 << 5
	PageHuge      = 1 << 6
	PageSoftDirty = 1 << 7
	PageGuard     = 1 << 8 // a guard page (MADV_GUARD_INSTALL); Linux 6.15+
)

type uffdioAPIArg struct {
	API, Features, Ioctls uint64
}

type uffdioRegisterArg struct {
	Start, Len, Mode, Ioctls uint64
}

type uffdioRangeArg struct {
	Start, Len uint64
}

type uffdioWriteprotectArg struct {
	Start, Len, Mode uint64
}

type pmScanArg struct {
	Size, Flags, Start, End, WalkEnd, Vec, VecLen, MaxPages       uint64
	CategoryInverted, CategoryMask, CategoryAnyofMask, ReturnMask uint64
}

// PageRegion is one run of pages PAGEMAP_SCAN found, [Start, End), with the
// categories asked for in the return mask.
type PageRegion struct {
	Start, End, Categories uint64
}

func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	return retry(func() (uintptr, error) {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if errno != 0 {
			return 0, errno
		}
		return r, nil
	})
}

// UffdEnableWPAsync performs the UFFDIO_API handshake asking for
// asynchronous write protection: a write to a protected page un-protects it
// without any message, leaving a trace PAGEMAP_SCAN (PageWritten) and
// /proc/PID/pagemap (no PagemapUffdWP bit) show.
func UffdEnableWPAsync(uffd int) error {
	arg := uffdioAPIArg{API: uffdAPI, Features: uffdFeatureWPAsync}
	if _, err := ioctlPtr(uffd, uffdioAPI, unsafe.Pointer(&arg)); err != nil {
		return os.NewSyscallError("ioctl(UFFDIO_API)", err)
	}
	return nil
}

// UffdRegisterWP registers [start, start+length) for write-protect tracking.
func UffdRegisterWP(uffd int, start, length uint64) error {
	arg := uffdioRegisterArg{Start: start, Len: length, Mode: uffdioRegisterModeWP}
	if _, err := ioctlPtr(uffd, uffdioRegister, unsafe.Pointer(&arg)); err != nil {
		return os.NewSyscallError("ioctl(UFFDIO_REGISTER)", err)
	}
	return nil
}

// UffdUnregister ends write-protect tracking of [start, start+length),
// lifting the protection of its pages.
func UffdUnregister(uffd int, start, length uint64) error {
	arg := uffdioRangeArg{Start: start, Len: length}
	if _, err := ioctlPtr(uffd, uffdioUnregister, unsafe.Pointer(&arg)); err != nil {
		return os.NewSyscallError("ioctl(UFFDIO_UNREGISTER)", err)
	}
	return nil
}

// UffdWriteProtect write-protects the populated pages of a registered range.
func UffdWriteProtect(uffd int, start, length uint64) error {
	arg := uffdioWriteprotectArg{Start: start, Len: length, Mode: uffdioWriteprotectMode}
	if _, err := ioctlPtr(uffd, uffdioWriteprotect, unsafe.Pointer(&arg)); err != nil {
		return os.NewSyscallError("ioctl(UFFDIO_WRITEPROTECT)", err)
	}
	return nil
}

// PagemapScan runs PAGEMAP_SCAN on pagemap (an open /proc/PID/pagemap) over
// [start, end): it fills regions with the runs of pages having every
// category of categoryMask, reports returnMask's categories for each, and
// returns how many regions it filled and where the walk stopped (end, or
// earlier when regions ran out).
func PagemapScan(pagemap int, start, end, flags, categoryMask, returnMask uint64, regions []PageRegion) (int, uint64, error) {
	return scanPagemap(pagemap, pmScanArg{Flags: flags, Start: start, End: end, CategoryMask: categoryMask, ReturnMask: returnMask}, regions)
}

// PagemapQuery is what PagemapWalk asks PAGEMAP_SCAN: with Flags
// (ScanWPMatching, ScanCheckWPAsync), the pages having every category of
// CategoryMask and any of CategoryAnyofMask (when set), each region with
// its categories of ReturnMask. PageFile in any mask makes the kernel
// look at every page's struct page, several times slower than the page
// table alone.
type PagemapQuery struct {
	Flags, CategoryMask, CategoryAnyofMask, ReturnMask uint64
	// CategoryInverted flips categories before they are matched: with
	// PagePresent, CategoryAnyofMask's PagePresent means "not present".
	CategoryInverted uint64
}

// PagemapWalk runs PAGEMAP_SCAN on pagemap over [start, end), call after
// call (regions is room for one call's results), and hands each region
// found to each. The kernel can report regions past the walk_end it
// returns, and the next call, which starts there, reports them again.
// Without ScanWPMatching, a region is cut at walk_end, so a page is handed
// once, from the call whose walk covered it. With it, a region reported
// again is handed again: the later report is the one after which the pages
// are write-protected (or they were written since), so a copy taken at the
// first may be stale (a pre-copy test restored wrong pages when it was
// dropped), and the part past walk_end is kept too, as nothing says it was
// not protected.
func PagemapWalk(pagemap int, start, end uint64, q PagemapQuery, regions []PageRegion, each func(PageRegion)) error {
	for at := start; at < end; {
		arg := pmScanArg{Flags: q.Flags, Start: at, End: end, CategoryInverted: q.CategoryInverted,
			CategoryMask: q.CategoryMask, CategoryAnyofMask: q.CategoryAnyofMask, ReturnMask: q.ReturnMask}
		n, walkEnd, err := scanPagemap(pagemap, arg, regions)
		if err != nil {
			return err
		}
		for _, r := range regions[:n] {
			if q.Flags&ScanWPMatching == 0 {
				r.End = min(r.End, walkEnd)
			}
			if r.Start < r.End {
				each(r)
			}
		}
		if walkEnd <= at {
			return fmt.Errorf("PAGEMAP_SCAN stopped at %#x", walkEnd)
		}
		at = walkEnd
	}
	return nil
}

// PagemapKnowsGuards says whether PAGEMAP_SCAN reports guard pages
// (PageGuard): an older kernel refuses the category.
func PagemapKnowsGuards() bool {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false
	}
	defer f.Close()
	var probe [1]PageRegion
	at := uint64(uintptr(unsafe.Pointer(&probe[0]))) &^ (uint64(os.Getpagesize()) - 1)
	_, _, err = scanPagemap(int(f.Fd()), pmScanArg{Start: at, End: at + uint64(os.Getpagesize()), CategoryMask: PageGuard, ReturnMask: PageGuard}, probe[:])
	return err == nil
}

func scanPagemap(pagemap int, arg pmScanArg, regions []PageRegion) (int, uint64, error) {
	if len(regions) == 0 {
		return 0, arg.Start, nil
	}
	arg.Size = uint64(unsafe.Sizeof(pmScanArg{}))
	arg.Vec, arg.VecLen = uint64(uintptr(unsafe.Pointer(&regions[0]))), uint64(len(regions))
	n, err := ioctlPtr(pagemap, pagemapScan, unsafe.Pointer(&arg))
	runtime.KeepAlive(regions)
	if err != nil {
		return 0, arg.Start, os.NewSyscallError("ioctl(PAGEMAP_SCAN)", err)
	}
	return int(n), arg.WalkEnd, nil
}

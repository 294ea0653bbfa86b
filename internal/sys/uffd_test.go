package sys

import (
	"os"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Write tracking on this process's own memory: after write protection, only
// the pages written since show up as written, and a scan that re-protects
// them leaves nothing written behind.
func TestUffdWriteTracking(t *testing.T) {
	ps := uint64(os.Getpagesize())
	all, err := unix.Mmap(-1, 0, int(17*ps), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(all)
	for i := range all {
		all[i] = 1
	}
	// The first page stays unregistered.
	mem := all[ps:]
	fd, _, errno := unix.Syscall(SysUserfaultfd, unix.O_CLOEXEC|unix.O_NONBLOCK|UffdUserModeOnly, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v", errno)
	}
	uffd := NewFD(int(fd))
	defer uffd.Close()
	if err := UffdEnableWPAsync(uffd.Int()); err != nil {
		t.Skipf("asynchronous write protection: %v", err)
	}
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	if err := UffdRegisterWP(uffd.Int(), start, 16*ps); err != nil {
		t.Fatal(err)
	}
	if err := UffdWriteProtect(uffd.Int(), start, 16*ps); err != nil {
		t.Fatal(err)
	}
	mem[3*ps] = 2
	mem[4*ps+7] = 2
	mem[9*ps] = 2
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	regions := make([]PageRegion, 8)
	scan := func(flags uint64) []PageRegion {
		n, end, err := PagemapScan(int(pm.Fd()), start, start+16*ps, flags|ScanCheckWPAsync, PageWritten, PageWritten, regions)
		if err != nil {
			t.Fatal(err)
		}
		if end != start+16*ps {
			t.Fatalf("walk ended at %#x, want %#x", end, start+16*ps)
		}
		return append([]PageRegion(nil), regions[:n]...)
	}
	want := []PageRegion{
		{start + 3*ps, start + 5*ps, PageWritten},
		{start + 9*ps, start + 10*ps, PageWritten},
	}
	if diff := cmp.Diff(want, scan(ScanWPMatching)); diff != "" {
		t.Errorf("written pages (-want +got):\n%s", diff)
	}
	if got := scan(0); len(got) != 0 {
		t.Errorf("after re-protection, written: %v", got)
	}
	// A walk with room for one region a call goes on until the end and
	// hands each written page once.
	mem[1*ps] = 3
	mem[6*ps] = 3
	mem[7*ps] = 3
	mem[12*ps] = 3
	walk := func() []PageRegion {
		var got []PageRegion
		q := PagemapQuery{Flags: ScanWPMatching | ScanCheckWPAsync, CategoryMask: PageWritten, ReturnMask: PageWritten}
		if err := PagemapWalk(int(pm.Fd()), start, start+16*ps, q, regions[:1], func(r PageRegion) { got = append(got, r) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want = []PageRegion{
		{start + 1*ps, start + 2*ps, PageWritten},
		{start + 6*ps, start + 8*ps, PageWritten},
		{start + 12*ps, start + 13*ps, PageWritten},
	}
	if diff := cmp.Diff(want, walk()); diff != "" {
		t.Errorf("written pages, one region a call (-want +got):\n%s", diff)
	}
	if got := walk(); len(got) != 0 {
		t.Errorf("after re-protection by the walk, written: %v", got)
	}
	// A mapping not registered is refused.
	if _, _, err := PagemapScan(int(pm.Fd()), start-ps, start, ScanCheckWPAsync, PageWritten, PageWritten, regions); err == nil {
		t.Errorf("scan of an unregistered page succeeded with ScanCheckWPAsync")
	}
}

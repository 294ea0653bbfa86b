package checkpoint

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// objectRuns finds the pages of a shared memory object that hold data,
// counted from its start, whatever part of it the mapping maps.
func TestObjectRuns(t *testing.T) {
	ps := uint64(os.Getpagesize())
	for _, tc := range []struct {
		name     string
		size     uint64 // pages
		written  []uint64
		mapped   [2]uint64 // offset and length of the mapping, pages
		wantSize uint64
		want     []ckpt.PageRun
	}{
		{"empty", 16, nil, [2]uint64{0, 16}, 16, nil},
		{"pages outside the mapping count", 64, []uint64{2, 3, 40, 63}, [2]uint64{32, 32}, 64, []ckpt.PageRun{{Index: 2, Count: 2}, {Index: 40, Count: 1}, {Index: 63, Count: 1}}},
		{"truncated under the mapping", 8, []uint64{1}, [2]uint64{4, 8}, 12, []ckpt.PageRun{{Index: 1, Count: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := unix.MemfdCreate("objectruns", 0)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "objectruns")
			defer f.Close()
			if err := f.Truncate(int64(tc.size * ps)); err != nil {
				t.Fatal(err)
			}
			page := make([]byte, ps)
			page[7] = 1
			for _, i := range tc.written {
				if _, err := f.WriteAt(page, int64(i*ps)); err != nil {
					t.Fatal(err)
				}
			}
			m := &procfs.Mapping{Start: 0x100000, End: 0x100000 + tc.mapped[1]*ps, Offset: tc.mapped[0] * ps, Shared: true}
			size, runs, err := objectRuns(f, m, ps, nil)
			if err != nil {
				t.Fatal(err)
			}
			if size != tc.wantSize*ps {
				t.Errorf("size %#x, want %#x", size, tc.wantSize*ps)
			}
			if diff := cmp.Diff(tc.want, runs); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
		})
	}
}

// Pages of a PROT_NONE mapping are read past the protection; those of a
// readable one as usual.
func TestReadProcessProtNone(t *testing.T) {
	ps := uint64(os.Getpagesize())
	for _, tc := range []struct {
		name string
		prot int
		mp   procfs.Prot
	}{
		{"readable", unix.PROT_READ | unix.PROT_WRITE, procfs.ProtRead | procfs.ProtWrite},
		{"PROT_NONE", unix.PROT_NONE, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, err := unix.Mmap(-1, 0, 4*int(ps), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(mem)
			for i := range 4 {
				mem[uint64(i)*ps+1] = byte(i + 1)
			}
			if err := unix.Mprotect(mem, tc.prot); err != nil {
				t.Fatal(err)
			}
			start := uint64(uintptrOf(&mem[0]))
			m := &procfs.Mapping{Start: start, End: start + 4*ps, Prot: tc.mp, Kind: procfs.KindAnon}
			buf := make([]byte, 2*ps)
			if err := readProcess(os.Getpid(), m, buf, []ckpt.PageRun{{Index: 1, Count: 1}, {Index: 3, Count: 1}}, ps); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]byte{2, 4}, []byte{buf[1], buf[ps+1]}); diff != "" {
				t.Errorf("pages read (-want +got):\n%s", diff)
			}
		})
	}
}

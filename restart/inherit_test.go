package restart

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestKeepFromParent(t *testing.T) {
	const priv = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	file := &ckpt.FileIdentity{Path: "/lib/x.so", Dev: 1, Inode: 2}
	parent := []ckpt.VMA{
		{Start: 0x1000, End: 0x3000, Flags: priv, Kind: ckpt.VMAAnon},
		{Start: 0x3000, End: 0x5000, Flags: priv, Kind: ckpt.VMAAnon},
		{Start: 0x5000, End: 0x6000, Flags: unix.MAP_SHARED | unix.MAP_ANONYMOUS, Shmem: 7, Kind: ckpt.VMAAnon},
		{Start: 0x6000, End: 0x8000, Flags: unix.MAP_PRIVATE, File: file, Kind: ckpt.VMAFile},
		{Start: 0x8000, End: 0x9000, Flags: unix.MAP_SHARED, Memfd: 3, Kind: ckpt.VMAFile},
		{Start: 0x9000, End: 0xa000, Flags: unix.MAP_PRIVATE, Memfd: 4, Kind: ckpt.VMAFile},
	}
	for _, tc := range []struct {
		name   string
		layout []ckpt.Area
		want   []uint64
	}{
		{"same ranges", []ckpt.Area{{Start: 0x1000, End: 0x3000}, {Start: 0x3000, End: 0x5000}, {Start: 0x6000, End: 0x8000}}, []uint64{0x1000, 0x3000, 0x6000}},
		{"a range grown or cut is not kept", []ckpt.Area{{Start: 0x1000, End: 0x4000}, {Start: 0x3000, End: 0x4000}}, nil},
		{"shared memory and memfds are mapped again", []ckpt.Area{{Start: 0x5000, End: 0x6000}, {Start: 0x8000, End: 0x9000}, {Start: 0x9000, End: 0xa000}}, nil},
		{"none in common", []ckpt.Area{{Start: 0x20000, End: 0x21000}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			for _, s := range keptSpans(keepFromParent(tc.layout, parent)) {
				got = append(got, s.start)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSameMapping(t *testing.T) {
	const priv = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	anon := ckpt.VMA{Start: 0x1000, End: 0x3000, Flags: priv, Prot: unix.PROT_READ}
	f := ckpt.VMA{Start: 0x1000, End: 0x3000, Flags: unix.MAP_PRIVATE, Pgoff: 0x2000, File: &ckpt.FileIdentity{Path: "/a", Dev: 1, Inode: 2, Size: 9}}
	with := func(v ckpt.VMA, change func(*ckpt.VMA)) ckpt.VMA { change(&v); return v }
	for _, tc := range []struct {
		name   string
		pv, v  ckpt.VMA
		wantOK bool
	}{
		{"anonymous, other protection", anon, with(anon, func(v *ckpt.VMA) { v.Prot = unix.PROT_NONE }), true},
		{"grows down now", anon, with(anon, func(v *ckpt.VMA) { v.Flags |= unix.MAP_GROWSDOWN }), false},
		{"other end", anon, with(anon, func(v *ckpt.VMA) { v.End = 0x4000 }), false},
		{"a file where anonymous memory was", anon, f, false},
		{"same file, changed size since", f, with(f, func(v *ckpt.VMA) { v.File = &ckpt.FileIdentity{Path: "/a", Dev: 1, Inode: 2, Size: 10} }), true},
		{"other inode", f, with(f, func(v *ckpt.VMA) { v.File = &ckpt.FileIdentity{Path: "/a", Dev: 1, Inode: 3} }), false},
		{"other offset", f, with(f, func(v *ckpt.VMA) { v.Pgoff = 0 }), false},
		{"shared now", anon, with(anon, func(v *ckpt.VMA) { v.Flags = unix.MAP_SHARED | unix.MAP_ANONYMOUS; v.Shmem = 5 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameMapping(&tc.pv, &tc.v); got != tc.wantOK {
				t.Errorf("sameMapping = %v, want %v", got, tc.wantOK)
			}
		})
	}
}

func TestOutside(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    span
		keep []span
		want []span
	}{
		{"nothing kept", span{0, 10}, nil, []span{{0, 10}}},
		{"all kept", span{2, 8}, []span{{0, 10}}, nil},
		{"middle kept", span{0, 10}, []span{{3, 5}}, []span{{0, 3}, {5, 10}}},
		{"two kept, one at each edge", span{0, 10}, []span{{0, 2}, {8, 10}}, []span{{2, 8}}},
		{"kept elsewhere", span{0, 10}, []span{{10, 20}, {30, 40}}, []span{{0, 10}}},
		{"adjacent kept", span{0, 10}, []span{{2, 4}, {4, 6}}, []span{{0, 2}, {6, 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, outside(tc.s, tc.keep), cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("outside (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffering(t *testing.T) {
	const ps = 16
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, ps) }
	cat := func(pages ...[]byte) []byte { return bytes.Join(pages, nil) }
	for _, tc := range []struct {
		name   string
		cur, b []byte
		want   []ckpt.PageRun
	}{
		{"equal", cat(page(1), page(2)), cat(page(1), page(2)), nil},
		{"one byte of the last page", cat(page(1), page(2)), cat(page(1), append(page(2)[:ps-1], 9)), []ckpt.PageRun{{Index: 1, Count: 1}}},
		{"runs", cat(page(0), page(0), page(0), page(0)), cat(page(1), page(1), page(0), page(1)), []ckpt.PageRun{{Index: 0, Count: 2}, {Index: 3, Count: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, differing(tc.cur, tc.b, ps)); diff != "" {
				t.Errorf("differing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStale(t *testing.T) {
	const (
		present = uint64(procfs.PagemapPresent)
		swapped = uint64(procfs.PagemapSwapped)
		file    = uint64(procfs.PagemapFileShared)
	)
	for _, tc := range []struct {
		name    string
		filled  []uint64
		entries []uint64
		first   uint64
		want    []ckpt.PageRun
	}{
		{"filled pages stay", []uint64{0b11}, []uint64{present, present}, 0, nil},
		{"the parent's anonymous pages go", []uint64{0b01}, []uint64{present, present, swapped, 0}, 0, []ckpt.PageRun{{Index: 1, Count: 2}}},
		{"the file's own pages stay", nil, []uint64{present | file, present, 0}, 0, []ckpt.PageRun{{Index: 1, Count: 1}}},
		{"a later part of the mapping", []uint64{1 << 4}, []uint64{present, present}, 4, []ckpt.PageRun{{Index: 5, Count: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iv := &inheritedVMA{filled: append(tc.filled, 0)}
			if diff := cmp.Diff(tc.want, stale(iv, tc.entries, tc.first)); diff != "" {
				t.Errorf("stale (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMembarrierCommands(t *testing.T) {
	for _, tc := range []struct {
		name    string
		regs    uint32
		want    []string
		wantErr bool
	}{
		{"none", 0, nil, false},
		{"global and private", 1<<2 | 1<<4, []string{"REGISTER_GLOBAL_EXPEDITED", "REGISTER_PRIVATE_EXPEDITED"}, false},
		{"all", 1<<2 | 1<<4 | 1<<6 | 1<<8, []string{"REGISTER_GLOBAL_EXPEDITED", "REGISTER_PRIVATE_EXPEDITED", "REGISTER_PRIVATE_EXPEDITED_SYNC_CORE", "REGISTER_PRIVATE_EXPEDITED_RSEQ"}, false},
		{"one unknown", 1<<4 | 1<<12, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := membarrierCommands(tc.regs)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var got []string
			for _, c := range cmds {
				got = append(got, c.name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

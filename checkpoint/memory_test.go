package checkpoint

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestSplitRuns(t *testing.T) {
	type run = ckpt.PageRun
	for _, tc := range []struct {
		name string
		runs []run
		max  uint64
		want [][]run
	}{
		{"empty", nil, 4, nil},
		{"fits", []run{{Index: 0, Count: 2}, {Index: 5, Count: 1}}, 4, [][]run{{{Index: 0, Count: 2}, {Index: 5, Count: 1}}}},
		{"exact", []run{{Index: 0, Count: 4}}, 4, [][]run{{{Index: 0, Count: 4}}}},
		{"splits a run", []run{{Index: 10, Count: 10}}, 4, [][]run{{{Index: 10, Count: 4}}, {{Index: 14, Count: 4}}, {{Index: 18, Count: 2}}}},
		{"splits across runs", []run{{Index: 0, Count: 3}, {Index: 7, Count: 3}}, 4, [][]run{{{Index: 0, Count: 3}, {Index: 7, Count: 1}}, {{Index: 8, Count: 2}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, splitRuns(tc.runs, tc.max)); diff != "" {
				t.Errorf("splitRuns (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWantPage(t *testing.T) {
	const (
		present = procfs.PagemapEntry(procfs.PagemapPresent)
		swapped = procfs.PagemapEntry(procfs.PagemapSwapped)
		file    = procfs.PagemapEntry(procfs.PagemapFileShared)
	)
	anon := &procfs.Mapping{Kind: procfs.KindAnon}
	privFile := &procfs.Mapping{Kind: procfs.KindFile}
	sharedFile := &procfs.Mapping{Kind: procfs.KindFile, Shared: true}
	sharedAnon := &procfs.Mapping{Kind: procfs.KindAnon, Shared: true}
	vdso := &procfs.Mapping{Kind: procfs.KindVdso}
	for _, tc := range []struct {
		name string
		m    *procfs.Mapping
		e    procfs.PagemapEntry
		want bool
	}{
		{"anon present", anon, present, true},
		{"anon swapped", anon, swapped, true},
		{"anon never touched", anon, 0, false},
		{"private file, clean page", privFile, present | file, false},
		{"private file, copy-on-written page", privFile, present, true},
		{"shared file: the file holds it", sharedFile, present | file, false},
		{"shared anon present", sharedAnon, present | file, true},
		{"vdso never", vdso, present | file, false},
	} {
		if got := wantPage(tc.m, tc.e); got != tc.want {
			t.Errorf("%s: wantPage = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMadviseDescribes(t *testing.T) {
	seen := madvise{ranges: map[[2]uint64]bool{{0x1000, 0x3000}: true, {0x5000, 0x6000}: true}}
	m := func(start, end uint64) procfs.Mapping { return procfs.Mapping{Start: start, End: end} }
	for _, tc := range []struct {
		name string
		adv  madvise
		maps []procfs.Mapping
		want bool
	}{
		{"same layout", seen, []procfs.Mapping{m(0x1000, 0x3000), m(0x5000, 0x6000)}, true},
		{"a VMA more seen (the scratch page)", seen, []procfs.Mapping{m(0x1000, 0x3000)}, false},
		{"a VMA grown since", seen, []procfs.Mapping{m(0x1000, 0x4000), m(0x5000, 0x6000)}, false},
		{"a VMA more now", seen, []procfs.Mapping{m(0x1000, 0x3000), m(0x5000, 0x6000), m(0x7000, 0x8000)}, false},
		{"failed read", madvise{err: errors.New("gone")}, nil, false},
	} {
		if got := tc.adv.describes(tc.maps); got != tc.want {
			t.Errorf("%s: describes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

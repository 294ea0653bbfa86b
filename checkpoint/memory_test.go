package checkpoint

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestSplitRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs []ckpt.PageRun
		max  uint64
		want [][]ckpt.PageRun
	}{
		{"empty", nil, 4, nil},
		{"fits", []ckpt.PageRun{{0, 2}, {5, 1}}, 4, [][]ckpt.PageRun{{{0, 2}, {5, 1}}}},
		{"exact", []ckpt.PageRun{{0, 4}}, 4, [][]ckpt.PageRun{{{0, 4}}}},
		{"splits a run", []ckpt.PageRun{{10, 10}}, 4, [][]ckpt.PageRun{{{10, 4}}, {{14, 4}}, {{18, 2}}}},
		{"splits across runs", []ckpt.PageRun{{0, 3}, {7, 3}}, 4, [][]ckpt.PageRun{{{0, 3}, {7, 1}}, {{8, 2}}}},
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

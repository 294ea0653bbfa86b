package checkpoint

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

// Pages read in the frozen phase are kept in the page file a buffer at a
// time; a stretch of the plan may run over from one buffer's pages into
// the next, and its pages must still be stored in order, zero pages left
// out.
func TestCutAcrossSegments(t *testing.T) {
	const ps = 4096
	page := func(v byte) []byte { return bytes.Repeat([]byte{v}, ps) }
	tests := []struct {
		name     string
		plan     []framePlan
		segs     [][][]byte // pages of each segment
		wantRuns []ckpt.PageRun
		want     []byte // the stored pages, in order
		wantErr  bool
	}{
		{
			name:     "one segment",
			plan:     []framePlan{{idx: 10, count: 3}},
			segs:     [][][]byte{{page(1), page(0), page(3)}},
			wantRuns: []ckpt.PageRun{{Index: 10, Count: 1}, {Index: 12, Count: 1}},
			want:     append(page(1), page(3)...),
		},
		{
			name:     "a stretch over two segments",
			plan:     []framePlan{{idx: 0, count: 2}, {idx: 5, count: 4}},
			segs:     [][][]byte{{page(1), page(2), page(3)}, {page(4), page(0), page(6)}},
			wantRuns: []ckpt.PageRun{{Index: 0, Count: 2}, {Index: 5, Count: 2}, {Index: 8, Count: 1}},
			want:     bytes.Join([][]byte{page(1), page(2), page(3), page(4), page(6)}, nil),
		},
		{
			name:    "fewer pages read than planned",
			plan:    []framePlan{{idx: 0, count: 3}},
			segs:    [][][]byte{{page(1), page(2)}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := newPageFile(0)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			file.reserve(ps) // the pages are not at the file's start
			fresh := &freshPages{pageSize: ps}
			for _, seg := range tt.segs {
				if err := fresh.add(file, bytes.Join(seg, nil), ps); err != nil {
					t.Fatal(err)
				}
			}
			c := pieceCutter{out: []*precopied{{}}, chunk: 1024, pageSize: ps}
			err = c.cut(&tracker{}, tt.plan, fresh)
			if (err != nil) != tt.wantErr {
				t.Fatalf("cut: %v, want an error: %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			var runs []ckpt.PageRun
			var got []byte
			for _, o := range c.out {
				runs = append(runs, o.runs...)
				got = append(got, readRanges(t, file, o.ranges)...)
			}
			if diff := cmp.Diff(tt.wantRuns, runs); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("stored %d bytes, not the %d expected, or not in order", len(got), len(tt.want))
			}
		})
	}
}

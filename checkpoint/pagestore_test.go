package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

// The page store hands out room from the first slab that has enough,
// takes back the unused end of the last room taken only, and says when it
// has no room left.
func TestPageStore(t *testing.T) {
	const mib = 1 << 20
	type step struct {
		take     int // bytes to take, or
		giveBack int // index of an earlier step whose room to give back,
		keep     int // keeping this much of it
	}
	type place struct{ Slab, Offset int } // where a step's room is; Slab -1: none
	for _, tc := range []struct {
		name  string
		slabs []int
		steps []step
		want  []place
	}{
		{
			name:  "fills a slab, then the next",
			slabs: []int{64 * mib, 64 * mib},
			steps: []step{{take: 16 * mib}, {take: 16 * mib}, {take: 16 * mib}, {take: 16 * mib}, {take: 16 * mib}},
			want:  []place{{0, 0}, {0, 16 * mib}, {0, 32 * mib}, {0, 48 * mib}, {1, 0}},
		},
		{
			name:  "a smaller request fills what a larger one left",
			slabs: []int{20 * mib, 64 * mib},
			steps: []step{{take: 16 * mib}, {take: 16 * mib}, {take: 4 * mib}, {take: 4 * mib}},
			want:  []place{{0, 0}, {1, 0}, {0, 16 * mib}, {1, 16 * mib}},
		},
		{
			name:  "gives back in an earlier slab",
			slabs: []int{20 * mib, 64 * mib},
			steps: []step{{take: 16 * mib}, {take: 16 * mib}, {take: 4 * mib}, {giveBack: 2, keep: 0}, {take: 2 * mib}},
			want:  []place{{0, 0}, {1, 0}, {0, 16 * mib}, {}, {0, 16 * mib}},
		},
		{
			name:  "gives back the end of the last room",
			slabs: []int{64 * mib},
			steps: []step{{take: 16 * mib}, {giveBack: 0, keep: 4 * mib}, {take: 16 * mib}},
			want:  []place{{0, 0}, {}, {0, 4 * mib}},
		},
		{
			name:  "not the end of an earlier room",
			slabs: []int{64 * mib},
			steps: []step{{take: 16 * mib}, {take: 16 * mib}, {giveBack: 0, keep: 0}, {take: 16 * mib}},
			want:  []place{{0, 0}, {0, 16 * mib}, {}, {0, 32 * mib}},
		},
		{
			name:  "none left",
			slabs: []int{8 * mib},
			steps: []step{{take: 16 * mib}, {take: 8 * mib}, {take: 1}},
			want:  []place{{-1, 0}, {0, 0}, {-1, 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &pageStore{}
			for _, n := range tc.slabs {
				s.slabs, s.used = append(s.slabs, make([]byte, n)), append(s.used, 0)
			}
			rooms := make([][]byte, len(tc.steps))
			var got []place
			for i, st := range tc.steps {
				if st.take == 0 {
					s.giveBack(rooms[st.giveBack], st.keep)
					got = append(got, place{})
					continue
				}
				rooms[i] = s.take(st.take)
				got = append(got, where(s, rooms[i]))
				if rooms[i] != nil && (len(rooms[i]) != st.take || cap(rooms[i]) != st.take) {
					t.Errorf("step %d: room of len %d cap %d, want %d", i, len(rooms[i]), cap(rooms[i]), st.take)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rooms (-want +got):\n%s", diff)
			}
		})
	}
	var nilStore *pageStore
	if nilStore.take(4096) != nil {
		t.Error("a nil store has room")
	}
}

// where finds b in s's slabs.
func where(s *pageStore, b []byte) struct{ Slab, Offset int } {
	if b == nil {
		return struct{ Slab, Offset int }{-1, 0}
	}
	at := uintptr(unsafe.Pointer(&b[0]))
	for i, slab := range s.slabs {
		if start := uintptr(unsafe.Pointer(&slab[0])); at >= start && at < start+uintptr(len(slab)) {
			return struct{ Slab, Offset int }{i, int(at - start)}
		}
	}
	return struct{ Slab, Offset int }{-2, 0}
}

// readIntoFile writes the pages read, a piece at a time, into one range of
// the page file, with the runs of the pages kept merged across pieces and
// the checksum of what it wrote; the next reservation starts past the
// whole of the earlier one.
func TestReadIntoFile(t *testing.T) {
	const ps = 4096
	page := func(v byte) []byte { return bytes.Repeat([]byte{v}, ps) }
	// The pages' contents by index: 0 for a zero page, which is dropped.
	contents := map[uint64]byte{0: 1, 1: 2, 2: 0, 3: 4, 7: 5, 8: 6}
	read := func(piece []ckpt.PageRun, buf []byte) ([]byte, []ckpt.PageRun, error) {
		pos := 0
		for _, r := range piece {
			for i := r.Index; i < r.Index+r.Count; i++ {
				copy(buf[pos:], page(contents[i]))
				pos += ps
			}
		}
		return compactPages(buf[:pos], piece, ps, func(_ uint64, p []byte) (bool, error) { return !allZero(p), nil })
	}
	file, err := newPageFile(64 * ps)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	runs := []ckpt.PageRun{{Index: 0, Count: 4}, {Index: 7, Count: 2}}
	// Two pages a piece: the run 0-3 is read in two pieces.
	got, kept, err := readIntoFile(file, runs, make([]byte, 2*ps), ps, read)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := slices.Concat(page(1), page(2), page(4), page(5), page(6))
	want := fileRange{off: 0, n: int64(len(wantBytes)), crc: ckpt.PayloadChecksum(0, wantBytes)}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fileRange{})); diff != "" {
		t.Errorf("range (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ckpt.PageRun{{Index: 0, Count: 2}, {Index: 3, Count: 1}, {Index: 7, Count: 2}}, kept); diff != "" {
		t.Errorf("kept runs (-want +got):\n%s", diff)
	}
	inFile := make([]byte, got.n)
	if _, err := file.f.ReadAt(inFile, got.off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inFile, wantBytes) {
		t.Error("the page file does not hold the pages kept")
	}
	next, _, err := readIntoFile(file, []ckpt.PageRun{{Index: 0, Count: 1}}, make([]byte, 2*ps), ps, read)
	if err != nil {
		t.Fatal(err)
	}
	if next.off != 6*ps {
		t.Errorf("the next range starts at %d, want past the first reservation (%d)", next.off, 6*ps)
	}
	// A failed read gives its reservation back and says why.
	if _, _, err := readIntoFile(file, runs, make([]byte, 2*ps), ps, func([]ckpt.PageRun, []byte) ([]byte, []ckpt.PageRun, error) {
		return nil, nil, os.ErrClosed
	}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("failed read: %v, want %v", err, os.ErrClosed)
	}
}

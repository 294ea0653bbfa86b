package checkpoint

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
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
	if nilStore.take(4096) != nil || len(nilStore.takeOrAllocate(4096)) != 4096 {
		t.Error("a nil store has room, or takeOrAllocate gave no memory")
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

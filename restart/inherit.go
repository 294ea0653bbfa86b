package restart

import (
	"bytes"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A child is forked from its restored parent, so it starts as a copy of
// the parent's memory, private pages shared copy-on-write, as the fork
// that made the original child shared them. Where the child's image has a
// private mapping just like one of the parent's (same range, same
// backing), the child keeps the one it inherited rather than mapping it
// anew, and its image's pages are written only where they differ from what
// it inherited: the pages it still shared with its parent at the
// checkpoint stay shared, and the tree takes the memory it took before.
// Inherited pages its image does not have (dropped, or never touched by
// the child) are dropped at the end.
//
// The parent's mappings are all still writable when its children are
// forked (their protections are set in finishMemory), and hold their
// final contents: the parent's memory records come before any child's.

// inheritedVMA is a mapping a child kept from its parent; filled has bit i
// set for page i once the image gave that page.
type inheritedVMA struct {
	start, end uint64
	filled     []uint64
}

func (iv *inheritedVMA) fill(idx uint64) { iv.filled[idx/64] |= 1 << (idx % 64) }

func (iv *inheritedVMA) isFilled(idx uint64) bool { return iv.filled[idx/64]&(1<<(idx%64)) != 0 }

// inheritable says whether a mapping is one a child can keep from its
// parent: private memory of the parent's own (anonymous, or a file's
// copy-on-write pages). Shared memory is mapped again from its object, a
// memfd or System V segment through its file.
func inheritable(v *ckpt.VMA) bool {
	return v.Flags&unix.MAP_SHARED == 0 && v.Shmem == 0 && v.Memfd == 0 && v.PacketSocket == 0 && !isVdsoKind(v.Kind) && v.Kind != ckpt.VMAVsyscall
}

// keepFromParent picks, among the areas of the child's layout, those its
// parent restored as an inheritable mapping of exactly that range: the
// parent's VMA by start.
func keepFromParent(layout []ckpt.Area, parent []ckpt.VMA) map[uint64]ckpt.VMA {
	byStart := make(map[uint64]int, len(parent))
	for i := range parent {
		byStart[parent[i].Start] = i
	}
	keep := map[uint64]ckpt.VMA{}
	for _, a := range layout {
		i, ok := byStart[a.Start]
		if !ok || parent[i].End != a.End || !inheritable(&parent[i]) {
			continue
		}
		keep[a.Start] = parent[i]
	}
	return keep
}

// sameMapping says whether the child's VMA v is mapped as the parent's pv
// was: kept, it is what mapping v would give but for its pages.
func sameMapping(pv, v *ckpt.VMA) bool {
	if pv.Start != v.Start || pv.End != v.End || pv.Flags != v.Flags || pv.Pgoff != v.Pgoff || !inheritable(v) {
		return false
	}
	switch {
	case pv.File == nil && v.File == nil:
		return true
	case pv.File == nil || v.File == nil:
		return false
	}
	return pv.File.Path == v.File.Path && pv.File.Dev == v.File.Dev && pv.File.Inode == v.File.Inode
}

// outside cuts the spans of keep (sorted, not overlapping) out of s.
func outside(s span, keep []span) []span {
	var out []span
	at := s.start
	for _, k := range keep {
		if k.end <= at || k.start >= s.end {
			continue
		}
		if k.start > at {
			out = append(out, span{at, k.start})
		}
		at = max(at, k.end)
	}
	if at < s.end {
		out = append(out, span{at, s.end})
	}
	return out
}

// keptSpans are the ranges of keep, in address order.
func keptSpans(keep map[uint64]ckpt.VMA) []span {
	out := make([]span, 0, len(keep))
	for _, v := range keep {
		out = append(out, span{v.Start, v.End})
	}
	sortSpans(out)
	return out
}

// adopt keeps the inherited mapping at v's range for v if it maps the same
// thing, and says whether it did; one that does not is unmapped, for v to
// be mapped in its place.
func (t *task) adopt(v *ckpt.VMA) (bool, error) {
	pv, ok := t.inheritable[v.Start]
	if !ok {
		return false, nil
	}
	delete(t.inheritable, v.Start)
	if !sameMapping(&pv, v) {
		if _, err := t.Syscall(unix.SYS_MUNMAP, pv.Start, pv.End-pv.Start); err != nil {
			return false, fmt.Errorf("unmapping the inherited %#x-%#x: %w", pv.Start, pv.End, err)
		}
		return false, nil
	}
	n := (v.End - v.Start) / pageSize
	t.inherited = append(t.inherited, &inheritedVMA{start: v.Start, end: v.End, filled: make([]uint64, (n+63)/64)})
	t.vmas = append(t.vmas, *v)
	return true, nil
}

// inheritedAt is the inherited mapping starting at start, if the VMA being
// filled is one.
func (t *task) inheritedAt(start uint64) *inheritedVMA {
	if k := len(t.inherited); k > 0 && t.inherited[k-1].start == start {
		return t.inherited[k-1]
	}
	return nil
}

// putPages writes b at addr of VMA v: into an inherited mapping, only the
// pages that differ from what is there.
func (t *task) putPages(v *ckpt.VMA, addr uint64, b []byte) error {
	iv := t.inheritedAt(v.Start)
	if iv == nil {
		return t.writePages(addr, b)
	}
	if len(t.s.cmpBuf) < len(b) {
		t.s.cmpBuf = make([]byte, max(len(b), pageBufSize))
	}
	cur := t.s.cmpBuf[:len(b)]
	// Through /proc/PID/mem: it reads shared pages as they are, where
	// process_vm_readv's pinning would copy them.
	if _, err := t.mem.ReadAt(cur, int64(addr)); err != nil {
		return fmt.Errorf("reading the inherited pages at %#x: %w", addr, err)
	}
	first := (addr - iv.start) / pageSize
	for i := uint64(0); i < uint64(len(b))/pageSize; i++ {
		iv.fill(first + i)
	}
	for _, r := range differing(cur, b, pageSize) {
		from, to := r.Index*pageSize, (r.Index+r.Count)*pageSize
		if err := t.writePages(addr+from, b[from:to]); err != nil {
			return err
		}
	}
	return nil
}

// differing are the runs of pages (by index in b) where b differs from cur.
func differing(cur, b []byte, ps uint64) []ckpt.PageRun {
	var runs []ckpt.PageRun
	for i := uint64(0); (i+1)*ps <= uint64(len(b)); i++ {
		if bytes.Equal(cur[i*ps:(i+1)*ps], b[i*ps:(i+1)*ps]) {
			continue
		}
		if k := len(runs); k > 0 && runs[k-1].Index+runs[k-1].Count == i {
			runs[k-1].Count++
		} else {
			runs = append(runs, ckpt.PageRun{Index: i, Count: 1})
		}
	}
	return runs
}

// stale are the runs of pages of iv its image did not give but that hold
// memory of their own (the parent's), from their pagemap entries: a page
// present and not the file's, or swapped.
func stale(iv *inheritedVMA, entries []uint64, first uint64) []ckpt.PageRun {
	var runs []ckpt.PageRun
	for i, raw := range entries {
		idx := first + uint64(i)
		e := procfs.PagemapEntry(raw)
		if iv.isFilled(idx) || !(e.Swapped() || e.Present() && !e.FileShared()) {
			continue
		}
		if k := len(runs); k > 0 && runs[k-1].Index+runs[k-1].Count == idx {
			runs[k-1].Count++
		} else {
			runs = append(runs, ckpt.PageRun{Index: idx, Count: 1})
		}
	}
	return runs
}

// settleInherited drops, once the task's memory records are done, the
// inherited pages its image did not give: an anonymous page reads as
// zeros again, a private file page as the file's.
func (t *task) settleInherited() error {
	if len(t.inherited) == 0 || t.released {
		return nil
	}
	pm, err := procfs.OpenPagemap(t.host)
	if err != nil {
		return err
	}
	defer pm.Close()
	var entries []uint64
	for _, iv := range t.inherited {
		npages := (iv.end - iv.start) / pageSize
		for first := uint64(0); first < npages; first += pageBufSize / 8 {
			n := min(npages-first, pageBufSize/8)
			start := iv.start + first*pageSize
			entries, err = procfs.ReadPagemap(pm, start, start+n*pageSize, entries)
			if err != nil {
				return err
			}
			for _, r := range stale(iv, entries, first) {
				if _, err := t.Syscall(unix.SYS_MADVISE, iv.start+r.Index*pageSize, r.Count*pageSize, unix.MADV_DONTNEED); err != nil {
					return fmt.Errorf("dropping inherited pages at %#x: %w", iv.start+r.Index*pageSize, err)
				}
			}
		}
	}
	t.inherited = nil
	return nil
}

// unmapUnclaimed unmaps what was kept from the parent for a VMA record
// that never came.
func (t *task) unmapUnclaimed() error {
	for _, pv := range t.inheritable {
		if _, err := t.Syscall(unix.SYS_MUNMAP, pv.Start, pv.End-pv.Start); err != nil {
			return fmt.Errorf("unmapping the inherited %#x-%#x: %w", pv.Start, pv.End, err)
		}
	}
	t.inheritable = nil
	return nil
}

func sortSpans(s []span) {
	sort.Slice(s, func(i, j int) bool { return s[i].start < s[j].start })
}

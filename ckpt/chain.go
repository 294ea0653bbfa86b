package ckpt

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// PageIndex says where each stored page of a chain of images is: an image
// and its parents, the newest image storing a page winning. Images with a
// parent store only the pages that changed; a restart takes the others
// from the chain, and a checkpoint compares against it.
type PageIndex struct {
	files    []*os.File
	pages    map[pageKey]pageLoc
	sorted   map[int][]uint64 // per pid, page addresses in order
	pageSize int
	// Chain lists the images, newest first.
	Chain []string
}

type pageKey struct {
	pid  int
	addr uint64
}

type pageLoc struct {
	file int
	off  int64
}

// MaxChain bounds how many images a chain may have.
const MaxChain = 64

// OpenChain indexes the image at path and, through their Parent fields,
// all its ancestors. Each parent must be the very image its child was made
// against (same size and creation time), else the error says which link
// is broken.
func OpenChain(path string) (*PageIndex, Header, error) {
	ix := &PageIndex{pages: map[pageKey]pageLoc{}, sorted: map[int][]uint64{}}
	var first Header
	var images []string
	var want *Header // what the child expects of the next parent
	for depth := 0; path != ""; depth++ {
		if depth == MaxChain {
			ix.Close()
			return nil, Header{}, fmt.Errorf("image chain longer than %d", MaxChain)
		}
		h, err := ix.add(path, want)
		if err != nil {
			ix.Close()
			return nil, Header{}, err
		}
		if depth == 0 {
			first = h
		}
		images = append(images, path)
		next := h.Parent
		if next != "" && !filepath.IsAbs(next) {
			next = filepath.Join(filepath.Dir(path), next)
		}
		hh := h
		want, path = &hh, next
	}
	ix.Chain = images
	for pid := range ix.sorted {
		addrs := ix.sorted[pid]
		sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
		ix.sorted[pid] = addrs
	}
	return ix, first, nil
}

// add indexes one image; pages already indexed (from a newer image) stay.
func (ix *PageIndex) add(path string, child *Header) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		if child != nil {
			return Header{}, fmt.Errorf("parent image %s: %w", path, err)
		}
		return Header{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return Header{}, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return Header{}, fmt.Errorf("image %s: %w", path, err)
	}
	h := r.Header()
	if child != nil && (st.Size() != child.ParentSize || !h.Created.Equal(child.ParentCreated)) {
		f.Close()
		return Header{}, fmt.Errorf("parent image %s is not the one its child was made against (size %d, created %s; the child expects size %d, created %s)",
			path, st.Size(), h.Created.Format("2006-01-02 15:04:05.000"), child.ParentSize, child.ParentCreated.Format("2006-01-02 15:04:05.000"))
	}
	if ix.pageSize == 0 {
		ix.pageSize = h.PageSize
	} else if h.PageSize != ix.pageSize {
		f.Close()
		return Header{}, fmt.Errorf("image %s has %d-byte pages, its child %d", path, h.PageSize, ix.pageSize)
	}
	file := len(ix.files)
	ix.files = append(ix.files, f)
	ps := uint64(h.PageSize)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Header{}, fmt.Errorf("image %s: %w", path, err)
		}
		if rec.Type != TypePages {
			continue
		}
		var pg Pages
		if err := rec.Decode(&pg); err != nil {
			return Header{}, err
		}
		if pg.ShmemObject {
			continue // a shared object is stored whole in every image
		}
		off := rec.PayloadOffset()
		for _, run := range pg.Runs {
			for i := uint64(0); i < run.Count; i++ {
				k := pageKey{pg.Pid, pg.VMAStart + (run.Index+i)*ps}
				if _, newer := ix.pages[k]; !newer {
					ix.pages[k] = pageLoc{file, off}
					ix.sorted[k.pid] = append(ix.sorted[k.pid], k.addr)
				}
				off += int64(ps)
			}
		}
	}
	return h, nil
}

// Has reports whether the chain stores the page at addr of pid.
func (ix *PageIndex) Has(pid int, addr uint64) bool {
	_, ok := ix.pages[pageKey{pid, addr}]
	return ok
}

// ReadPage reads the page at addr of pid into b (one page long).
func (ix *PageIndex) ReadPage(pid int, addr uint64, b []byte) error {
	loc, ok := ix.pages[pageKey{pid, addr}]
	if !ok {
		return fmt.Errorf("no page %#x of pid %d in the image chain", addr, pid)
	}
	_, err := ix.files[loc.file].ReadAt(b[:ix.pageSize], loc.off)
	return err
}

// Range lists the stored page addresses of pid in [start, end), in order.
func (ix *PageIndex) Range(pid int, start, end uint64) []uint64 {
	addrs := ix.sorted[pid]
	i := sort.Search(len(addrs), func(i int) bool { return addrs[i] >= start })
	j := sort.Search(len(addrs), func(i int) bool { return addrs[i] >= end })
	return addrs[i:j]
}

// Pages is how many pages the chain stores.
func (ix *PageIndex) Pages() int { return len(ix.pages) }

// Close closes the chain's files.
func (ix *PageIndex) Close() error {
	for _, f := range ix.files {
		f.Close()
	}
	ix.files = nil
	return nil
}

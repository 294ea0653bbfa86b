package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/crsub/crsub/internal/fault"
)

// SeekableFile is an image file written in place: sequentially, with holes
// left for payloads written later at their offsets.
type SeekableFile interface {
	io.WriteSeeker
	io.WriterAt
}

// CheckpointFile is Checkpoint into a file that can be written out of
// order, for Options.CopyOnWrite (with LeaveRunning): the pages of the
// copy-on-write copy are read after the thaw and written straight into
// the places the image left for them, a piece at a time. Unlike Snapshot,
// nothing is held in memory: the whole checkpoint costs about what a
// checkpoint that kills the process costs, and the process is frozen only
// to fork the copy. opts.Commit runs once the last page is in.
func CheckpointFile(ctx context.Context, pid int, f SeekableFile, opts Options) (*Stats, error) {
	w := &fileImage{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	commit := opts.Commit
	opts.Commit = nil
	defer w.pages.Close()
	st, err := Checkpoint(ctx, pid, w, opts)
	if err != nil {
		return st, err
	}
	// The copies were read when the tree was let go; pieces copied
	// before the freeze, if any, are written now.
	if err := w.resolve(); err != nil {
		return st, err
	}
	if commit != nil {
		fault.Phase("committing")
		if err := commit(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// fileImage is a ckpt.Deferrer over a SeekableFile: a deferred payload is
// a hole, skipped over, that resolve fills with WriteAt.
type fileImage struct {
	f        SeekableFile
	w        *bufio.Writer
	at       int64 // the file offset of the next byte written
	deferred []filePayload
	err      error
	// pages is the page file the deferred payloads may read, made when
	// asked for.
	pages *pageFile
}

// pagesFile returns the file's page file, made now.
func (w *fileImage) pagesFile() (*pageFile, error) {
	if w.pages == nil {
		f, err := newPageFile(0)
		if err != nil {
			return nil, err
		}
		w.pages = f
	}
	return w.pages, nil
}

type filePayload struct {
	at, n int64
	fill  func(io.Writer) error
}

func (w *fileImage) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(b)
	w.at += int64(n)
	w.err = err
	return n, err
}

// Defer holds the place of n bytes that fill produces in resolve.
func (w *fileImage) Defer(n int64, fill func(io.Writer) error) {
	if w.err != nil {
		return
	}
	if err := w.w.Flush(); err != nil {
		w.err = err
		return
	}
	if _, err := w.f.Seek(n, io.SeekCurrent); err != nil {
		w.err = fmt.Errorf("leaving room for a payload: %w", err)
		return
	}
	w.deferred = append(w.deferred, filePayload{at: w.at, n: n, fill: fill})
	w.at += n
}

// resolve writes what is buffered, then fills every hole, on every core:
// the payloads are independent of each other.
func (w *fileImage) resolve() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err != nil {
		return w.err
	}
	todo := w.deferred
	w.deferred = nil
	errs := make([]error, len(todo))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := todo[i]
				at := &offsetWriter{f: w.f, at: p.at}
				if err := p.fill(at); err != nil {
					errs[i] = err
				} else if at.at-p.at != p.n {
					errs[i] = fmt.Errorf("a deferred payload gave %d bytes, not %d", at.at-p.at, p.n)
				}
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	w.err = errors.Join(errs...)
	return w.err
}

// offsetWriter writes at an advancing offset of f.
type offsetWriter struct {
	f  io.WriterAt
	at int64
}

func (o *offsetWriter) Write(b []byte) (int, error) {
	n, err := o.f.WriteAt(b, o.at)
	o.at += int64(n)
	return n, err
}

// streams says whether the payloads written into w may reuse their
// buffers: w copies what it is given rather than keeping it.
func streams(w io.Writer) bool {
	_, ok := w.(*fileImage)
	return ok
}

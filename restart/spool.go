package restart

import (
	"io"
	"os"
	"sync"
)

// spool passes an image stream through, until asked to keep reading it
// ahead into an unlinked temporary file. A restart asks when it must wait
// for a pid still held by the frozen original of a streaming checkpoint
// (`crsub checkpoint -o - | crsub restart -i -`): the checkpoint kills the
// original only after writing its whole image, so the restart must take in
// the stream while it waits, or both would wait for each other.
type spool struct {
	src io.Reader

	mu      sync.Mutex
	cond    *sync.Cond
	file    *os.File
	written int64 // bytes in file
	read    int64 // bytes handed out from file
	done    bool  // src is exhausted
	err     error // why src ended (nil at EOF)
}

func newSpool(src io.Reader) *spool {
	s := &spool{src: src}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// start begins reading src ahead into a temporary file. It reports an
// error if the file cannot be made; the stream is then read as before.
func (s *spool) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		return nil
	}
	f, err := os.CreateTemp("", "crsub-restart-spool")
	if err != nil {
		return err
	}
	os.Remove(f.Name()) // nothing to clean up, whatever happens
	s.file = f
	go s.fill()
	return nil
}

func (s *spool) fill() {
	buf := make([]byte, 1<<20)
	for {
		n, err := s.src.Read(buf)
		if n > 0 {
			if _, werr := s.file.WriteAt(buf[:n], s.written); werr != nil {
				err = werr
			}
		}
		s.mu.Lock()
		s.written += int64(n)
		if err != nil {
			s.done = true
			if err != io.EOF {
				s.err = err
			}
		}
		s.cond.Broadcast()
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// draining reports whether the spool is still taking in the stream.
func (s *spool) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file != nil && !s.done
}

func (s *spool) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.file == nil {
		s.mu.Unlock()
		return s.src.Read(p)
	}
	for s.read == s.written && !s.done {
		s.cond.Wait()
	}
	if s.read == s.written {
		err := s.err
		s.mu.Unlock()
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	n := min(int64(len(p)), s.written-s.read)
	off := s.read
	s.mu.Unlock()
	k, err := s.file.ReadAt(p[:n], off)
	s.mu.Lock()
	s.read += int64(k)
	s.mu.Unlock()
	if err == io.EOF {
		err = nil
	}
	return k, err
}

// close releases the file; a fill still running ends with its next write.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		s.file.Close()
	}
}

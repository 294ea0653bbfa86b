package imagefilter

import (
	"fmt"
	"io"
	"os"
)

// spool keeps the payloads of held records on disk: a held pipe buffer or
// deleted file may be as large as the image allows, and the filter's memory
// must not grow with it.
type spool struct {
	dir  string
	f    *os.File
	end  int64 // bytes written since the last reset
	live int   // spooled payloads not yet released
}

// put copies a payload of n bytes into the spool and returns its offset.
// Reading r to its end is what verifies the payload's checksum.
func (s *spool) put(r io.Reader, n int64) (int64, error) {
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "crsub-filter-*")
		if err != nil {
			return 0, fmt.Errorf("a file to hold payloads in: %w", err)
		}
		// Unlinked at once, so that no failure or crash leaves it behind.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return 0, fmt.Errorf("a file to hold payloads in: %w", err)
		}
		s.f = f
	}
	off := s.end
	w := io.NewOffsetWriter(s.f, off)
	k, err := io.Copy(w, r)
	if err != nil {
		return 0, err
	}
	if k != n {
		return 0, fmt.Errorf("payload has %d bytes, announced %d", k, n)
	}
	s.end += n
	s.live++
	return off, nil
}

// reader returns a spooled payload.
func (s *spool) reader(off, n int64) io.Reader { return io.NewSectionReader(s.f, off, n) }

// release forgets one payload. Once none is live, the space is reused: in
// images as checkpoints write them a file is held only until its fd record,
// so the spool rarely holds more than one payload at a time.
func (s *spool) release() error {
	s.live--
	if s.live > 0 || s.f == nil {
		return nil
	}
	s.end = 0
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying the payload file: %w", err)
	}
	return nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

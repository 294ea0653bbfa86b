package restart

import (
	"github.com/crsub/crsub/internal/fsjournal"
)

// journalFiles lists the names this restart makes in the file system for
// its length (ghosts, removed directories) in the state directory, and
// first removes those that killed restarts listed there and left, saying
// so.
func (s *restorer) journalFiles() {
	s.files.Log = s.log
	if s.opts.StateDir == "" {
		return
	}
	done, err := fsjournal.RemoveAbandoned(s.opts.StateDir)
	for _, a := range done {
		if a.Removed {
			s.log.Warn("removed a file a killed restart had made", "path", a.Path)
		} else {
			s.log.Warn("kept a file a killed restart had made", "path", a.Path, "why", a.Kept)
		}
	}
	if err != nil {
		s.log.Warn("cannot remove the files killed restarts made", "dir", s.opts.StateDir, "err", err)
	}
	j, err := fsjournal.Open(s.opts.StateDir)
	if err != nil {
		s.log.Warn("cannot list the files the restart makes; a killed restart would leave them", "dir", s.opts.StateDir, "err", err)
		return
	}
	s.files.Journal = j
}

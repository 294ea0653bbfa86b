package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/journal"
)

// A cgroup outlives the process that made it, and only a live process can
// remove it: a crsub killed during a restart leaves the cgroups it made.
// runc, in that case, leaves them to "runc delete", which finds them in the
// container's state file under /run/runc; CRIU leaves them. A Hierarchies
// with a Journal does as runc: it lists each cgroup it is about to make in
// a journal of its own there (internal/journal), before making it, and
// marks each it made with the journal's name (the extended attribute
// markAttr). It removes the journal once the cgroups are removed again or
// kept (Keep). The next Hierarchies with the same Journal finds a journal
// no one holds: its maker died. It removes the cgroups listed there that
// are still marked as that journal's and empty (RemoveAbandoned), and then
// the journal.

// markAttr names the journal file a cgroup was made under (trusted.*:
// only a privileged process sets or reads it, and cgroupfs keeps it).
const markAttr = "trusted.crsub.made"

// journalSuffix ends the names of journal files.
const journalSuffix = ".cgroups"

// journalEntry is a line of a journal: a cgroup of a hierarchy.
type journalEntry struct {
	Controllers string `json:"hierarchy"`
	Path        string `json:"path"`
}

// mark says dir was made under the Hierarchies' journal.
func (h *Hierarchies) mark(dir string) error {
	if err := unix.Setxattr(dir, markAttr, []byte(filepath.Base(h.journal.Name())), 0); err != nil {
		return fmt.Errorf("marking cgroup %s as crsub's: %w", dir, os.NewSyscallError("setxattr", err))
	}
	return nil
}

// parseJournal reads a journal's entries (journal.Parse).
func parseJournal(b []byte) ([]journalEntry, error) {
	return journal.Parse(b, func(e journalEntry) error {
		if _, err := cleanPath(e.Path); err != nil {
			return err
		}
		if strings.ContainsAny(e.Controllers, "\x00/") {
			return fmt.Errorf("bad hierarchy %q", e.Controllers)
		}
		return nil
	})
}

// Abandoned is what RemoveAbandoned did with a cgroup a dead maker listed.
type Abandoned struct {
	Hierarchy, Path string
	// Removed, or else why it was kept.
	Removed bool
	Kept    string
}

// RemoveAbandoned removes the cgroups that makers now dead listed in the
// Journal directory and marked as made by them, deepest first, and their
// journals. A cgroup is kept if it is gone, not marked (another made it
// since), or holds tasks (the maker died once they ran, and they are
// theirs); one busy for longer than a second is kept, with its journal, for
// the next.
func (h *Hierarchies) RemoveAbandoned() ([]Abandoned, error) {
	if h.Journal == "" {
		return nil, nil
	}
	var done []Abandoned
	err := journal.Abandoned(h.Journal, journalSuffix, parseJournal, func(name string, list []journalEntry) (bool, error) {
		busy := false
		for i := len(list) - 1; i >= 0; i-- {
			e := list[i]
			a := Abandoned{Hierarchy: e.Controllers, Path: e.Path}
			root, err := h.mount(e.Controllers)
			if err != nil {
				return true, err
			}
			dir := filepath.Join(root, e.Path)
			mark := make([]byte, 256)
			n, err := unix.Getxattr(dir, markAttr, mark)
			switch {
			case errors.Is(err, unix.ENOENT):
				continue // removed, or never made
			case err != nil || string(mark[:n]) != filepath.Base(name):
				a.Kept = "not marked as made by the restart that listed it"
			default:
				a.Removed, a.Kept = removeEmpty(dir)
				busy = busy || a.Kept == "busy"
			}
			done = append(done, a)
		}
		return busy, nil
	})
	return done, err
}

// removeEmpty removes the cgroup in dir, waiting up to a second for the
// tasks just killed in it to go, or says why it kept it.
func removeEmpty(dir string) (bool, string) {
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || err == unix.ENOENT:
			return true, ""
		case err != unix.EBUSY:
			return false, os.NewSyscallError("rmdir", err).Error()
		case hasSubdirs(dir):
			return false, "cgroups below it are kept"
		}
		if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(bytes.TrimSpace(procs)) > 0 && time.Now().After(deadline) {
			return false, "tasks run in it"
		}
		if time.Now().After(deadline) {
			return false, "busy"
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Keep lets go of the journal: the cgroups made are the tasks' now.
func (h *Hierarchies) Keep() error {
	if h.journal == nil {
		return nil
	}
	err := h.journal.Remove()
	h.journal = nil
	return err
}

func hasSubdirs(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			return true
		}
	}
	return false
}

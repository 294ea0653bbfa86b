package cgroup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A cgroup outlives the process that made it, and only a live process can
// remove it: a crsub killed during a restart leaves the cgroups it made.
// runc, in that case, leaves them to "runc delete", which finds them in the
// container's state file under /run/runc; CRIU leaves them. A Hierarchies
// with a Journal does as runc: it lists each cgroup it is about to make in
// a file of its own there, before making it, and marks each it made with
// the file's name (the extended attribute markAttr). It holds an flock on
// the file while it lives, and removes the file once the cgroups are
// removed again or kept (Keep). The next Hierarchies with the same
// Journal finds a file no one holds: its maker died. It removes the
// cgroups listed there that are still marked as that file's and empty
// (RemoveAbandoned), and then the file.

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

// journal is the open, locked journal file of a Hierarchies.
type journal struct {
	file *os.File
	name string // its path
}

// openJournal makes a journal file under dir, locked before it has a name
// (an O_TMPFILE linked in) so that no one takes it for abandoned.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	name := filepath.Join(dir, fmt.Sprintf("restart-%d-%d%s", os.Getpid(), time.Now().UnixNano(), journalSuffix))
	if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		f.Close()
		return nil, &os.LinkError{Op: "linkat", Old: "O_TMPFILE", New: name, Err: err}
	}
	return &journal{file: f, name: name}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return os.NewSyscallError("flock", err)
		}
	}
}

// add lists a cgroup about to be made.
func (j *journal) add(e journalEntry) error {
	line, err := json.Marshal(e)
	if err == nil {
		_, err = j.file.Write(append(line, '\n'))
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.name, err)
	}
	return nil
}

// mark says dir was made under the journal.
func (j *journal) mark(dir string) error {
	if err := unix.Setxattr(dir, markAttr, []byte(filepath.Base(j.name)), 0); err != nil {
		return fmt.Errorf("marking cgroup %s as crsub's: %w", dir, os.NewSyscallError("setxattr", err))
	}
	return nil
}

// discard removes the journal: what it lists is gone or kept.
func (j *journal) discard() error {
	err := os.Remove(j.name)
	j.file.Close()
	return err
}

// parseJournal reads a journal's entries. A last line cut short (its
// maker killed while writing it) is dropped: the cgroup it names was not
// made yet. Anything else that does not parse is an error.
func parseJournal(b []byte) ([]journalEntry, error) {
	lines := bytes.Split(b, []byte{'\n'})
	// After the last newline: nothing, or the line cut short.
	lines = lines[:len(lines)-1]
	out := make([]journalEntry, 0, len(lines))
	for i, line := range lines {
		var e journalEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		err := dec.Decode(&e)
		if err == nil && dec.More() {
			err = errors.New("more than one entry")
		}
		if err == nil {
			_, err = cleanPath(e.Path)
		}
		if err == nil && strings.ContainsAny(e.Controllers, "\x00/") {
			err = fmt.Errorf("bad hierarchy %q", e.Controllers)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
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
	entries, err := os.ReadDir(h.Journal)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []Abandoned
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), journalSuffix) || !e.Type().IsRegular() {
			continue
		}
		d, err := h.removeAbandoned(filepath.Join(h.Journal, e.Name()))
		done = append(done, d...)
		if err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w", e.Name(), err))
		}
	}
	return done, errors.Join(errs...)
}

func (h *Hierarchies) removeAbandoned(name string) ([]Abandoned, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return nil, nil // its maker runs
	} else if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	list, err := parseJournal(b)
	if err != nil {
		return nil, err
	}
	var done []Abandoned
	busy := false
	for i := len(list) - 1; i >= 0; i-- {
		e := list[i]
		a := Abandoned{Hierarchy: e.Controllers, Path: e.Path}
		root, err := h.mount(e.Controllers)
		if err != nil {
			return done, err
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
	if busy {
		return done, nil
	}
	return done, os.Remove(name)
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
	err := h.journal.discard()
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

package journal

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

// File is a journal open and locked by its maker.
type File struct {
	file *os.File
	name string // its path
}

// Create makes a journal under dir, its name ending in suffix, locked
// before it has a name (an O_TMPFILE linked in) so that no one takes it
// for abandoned.
func Create(dir, suffix string) (*File, error) {
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
	name := filepath.Join(dir, fmt.Sprintf("restart-%d-%d%s", os.Getpid(), time.Now().UnixNano(), suffix))
	if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		f.Close()
		return nil, &os.LinkError{Op: "linkat", Old: "O_TMPFILE", New: name, Err: err}
	}
	return &File{file: f, name: name}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return os.NewSyscallError("flock", err)
		}
	}
}

// Name is the journal's path.
func (f *File) Name() string { return f.name }

// Append writes v, as a line of JSON.
func (f *File) Append(v any) error {
	line, err := json.Marshal(v)
	if err == nil {
		_, err = f.file.Write(append(line, '\n'))
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", f.name, err)
	}
	return nil
}

// Remove removes the journal, and lets go of it: what it lists is gone,
// or kept.
func (f *File) Remove() error {
	err := os.Remove(f.name)
	f.file.Close()
	return err
}

// Close lets go of the journal and leaves it, abandoned, to the next
// restart: as a killed maker does.
func (f *File) Close() error {
	return f.file.Close()
}

// Parse reads a journal's entries, each checked by check. A last line cut
// short (its maker killed while writing it) is dropped: a journal lists a
// thing before or after making it, never on the way. Anything else that
// does not parse is an error.
func Parse[E any](b []byte, check func(E) error) ([]E, error) {
	lines := bytes.Split(b, []byte{'\n'})
	// After the last newline: nothing, or the line cut short.
	lines = lines[:len(lines)-1]
	out := make([]E, 0, len(lines))
	for i, line := range lines {
		var e E
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		err := dec.Decode(&e)
		if err == nil && dec.More() {
			err = errors.New("more than one entry")
		}
		if err == nil {
			err = check(e)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Abandoned hands clean the path and entries (read by parse) of each
// journal in dir whose name ends in suffix and that no live maker holds,
// and removes the journal unless clean keeps it or fails. A journal a
// maker holds is left alone.
func Abandoned[E any](dir, suffix string, parse func([]byte) ([]E, error), clean func(name string, entries []E) (keep bool, err error)) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), suffix) || !e.Type().IsRegular() {
			continue
		}
		if err := abandoned(filepath.Join(dir, e.Name()), parse, clean); err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func abandoned[E any](name string, parse func([]byte) ([]E, error), clean func(string, []E) (bool, error)) error {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return nil // its maker runs
	} else if err != nil {
		return err
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	list, err := parse(b)
	if err != nil {
		return err
	}
	keep, err := clean(name, list)
	if keep || err != nil {
		return err
	}
	return os.Remove(name)
}

package fsjournal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/journal"
	"github.com/crsub/crsub/internal/procfs"
)

// suffix ends the names of journal files (internal/cgroup's end in
// ".cgroups", in the same directory).
const suffix = ".files"

// entry is a line of a journal: a name made, or one made before (Gone,
// its number from 1) removed again.
type entry struct {
	Gone int    `json:"gone,omitempty"`
	Path string `json:"path,omitempty"` // as crsub reached it
	Dev  uint64 `json:"dev,omitempty"`
	Ino  uint64 `json:"ino,omitempty"`
	Dir  bool   `json:"dir,omitempty"`
	// Parent is the handle of the directory holding the name, File the
	// file's own; nil where the filesystem gives none.
	Parent *handle `json:"parent,omitempty"`
	File   *handle `json:"file,omitempty"`
}

type handle struct {
	Type  int32  `json:"type"`
	Bytes []byte `json:"bytes"`
}

// Journal is the open, locked journal of a restart. A nil Journal lists
// nothing: a restart without a state directory.
type Journal struct {
	mu     sync.Mutex
	file   *journal.File
	made   int            // the names listed so far
	listed map[string]int // names made and not removed yet: their number
}

// Open makes a journal under dir.
func Open(dir string) (*Journal, error) {
	f, err := journal.Create(dir, suffix)
	if err != nil {
		return nil, err
	}
	return &Journal{file: f, listed: map[string]int{}}, nil
}

// Made lists path, a name just made.
func (j *Journal) Made(path string) error {
	if j == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("listing %s as made: %w", path, os.NewSyscallError("lstat", err))
	}
	e := entry{Path: path, Dev: st.Dev, Ino: st.Ino, Dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
	var err error
	if e.Parent, err = handleOf(filepath.Dir(path), unix.AT_SYMLINK_FOLLOW); err == nil {
		e.File, err = handleOf(path, 0)
	}
	if err != nil {
		return fmt.Errorf("listing %s as made: %w", path, err)
	}
	return j.list(path, e)
}

func (j *Journal) list(path string, e entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.file.Append(e); err != nil {
		return err
	}
	j.made++
	j.listed[path] = j.made
	return nil
}

// Making lists path before the file open at fd, which has no name yet
// (O_TMPFILE), is linked there: no moment has the name unlisted. A link
// that fails is Removed.
func (j *Journal) Making(path string, fd int) error {
	if j == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("listing %s: %w", path, os.NewSyscallError("fstat", err))
	}
	e := entry{Path: path, Dev: st.Dev, Ino: st.Ino}
	var err error
	if e.Parent, err = handleOf(filepath.Dir(path), unix.AT_SYMLINK_FOLLOW); err != nil {
		return fmt.Errorf("listing %s: %w", path, err)
	}
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	switch {
	case err == nil:
		e.File = &handle{Type: h.Type(), Bytes: h.Bytes()}
	case !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("listing %s: %w", path, os.NewSyscallError("name_to_handle_at", err))
	}
	return j.list(path, e)
}

// Removed says path, listed by Made, is removed.
func (j *Journal) Removed(path string) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	n, ok := j.listed[path]
	if !ok {
		return nil
	}
	delete(j.listed, path)
	return j.file.Append(entry{Gone: n})
}

// Close removes the journal once every name it lists is removed; one it
// lists still is left to the next restart, which removes it.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		return nil
	}
	var err error
	if len(j.listed) == 0 {
		err = j.file.Remove()
	} else {
		j.file.Close()
	}
	j.file = nil
	return err
}

// handleOf is the file handle of path (following a symbolic link with
// unix.AT_SYMLINK_FOLLOW), or nil on a filesystem that gives none.
func handleOf(path string, flags int) (*handle, error) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, flags)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP):
		return nil, nil
	case err != nil:
		return nil, &os.PathError{Op: "name_to_handle_at", Path: path, Err: err}
	}
	return &handle{Type: h.Type(), Bytes: h.Bytes()}, nil
}

// parse reads a journal's lines (journal.Parse). A name is listed only
// once made, so that a line cut short is a name left.
func parse(b []byte) ([]entry, error) {
	made := 0
	return journal.Parse(b, func(e entry) error {
		switch {
		case e.Gone < 0 || e.Gone > made:
			return fmt.Errorf("name %d removed, of %d listed", e.Gone, made)
		case e.Gone == 0 && (e.Path == "" || !filepath.IsAbs(e.Path) || strings.ContainsRune(e.Path, 0)):
			return fmt.Errorf("bad path %q", e.Path)
		case e.Gone == 0:
			made++
		}
		return nil
	})
}

// Abandoned is what RemoveAbandoned did with a name a dead maker listed.
type Abandoned struct {
	Path string // as the killed restart reached it
	// Removed, or else why it was kept.
	Removed bool
	Kept    string
}

// RemoveAbandoned removes the names that makers now dead listed in the
// journals of dir and did not remove, when they are still the files they
// made, and then the journals. A name gone, or whose directory is gone,
// is not reported.
func RemoveAbandoned(dir string) ([]Abandoned, error) {
	var done []Abandoned
	mounts := mountsOnce()
	err := journal.Abandoned(dir, suffix, parse, func(_ string, list []entry) (bool, error) {
		var made []entry
		for _, e := range list {
			if e.Gone > 0 {
				made[e.Gone-1].Gone = -1
				continue
			}
			made = append(made, e)
		}
		for i := len(made) - 1; i >= 0; i-- {
			if e := made[i]; e.Gone == 0 {
				if a, ok := removeName(e, mounts); ok {
					done = append(done, a)
				}
			}
		}
		return false, nil
	})
	return done, err
}

// removeName removes the name e lists if it is still the file made, and
// says what it did; false if there was nothing to say (the name or its
// directory gone).
func removeName(e entry, mounts func() []procfs.Mount) (Abandoned, bool) {
	a := Abandoned{Path: e.Path}
	dir, err := openDir(e, mounts)
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		return a, false
	}
	if err != nil {
		a.Kept = err.Error()
		return a, true
	}
	defer unix.Close(dir)
	base := filepath.Base(e.Path)
	var st unix.Stat_t
	if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return a, false
	} else if err != nil {
		a.Kept = os.NewSyscallError("fstatat", err).Error()
		return a, true
	}
	if st.Dev != e.Dev || st.Ino != e.Ino || !sameHandle(dir, base, e.File) {
		a.Kept = "another file has the name now"
		return a, true
	}
	flags := 0
	if e.Dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dir, base, flags); err != nil {
		a.Kept = os.NewSyscallError("unlinkat", err).Error()
		return a, true
	}
	a.Removed = true
	return a, true
}

// sameHandle says whether name in dir has handle h (nil: the filesystem
// gave none, and the inode number is all there is).
func sameHandle(dir int, name string, h *handle) bool {
	if h == nil {
		return true
	}
	got, _, err := unix.NameToHandleAt(dir, name, 0)
	return err == nil && got.Type() == h.Type && bytes.Equal(got.Bytes(), h.Bytes)
}

// openDir opens the directory of e's name, O_PATH: by its handle on a
// mount of its filesystem in crsub's mount namespace, else by its path
// unless that went through a process (/proc/PID/root, a mount namespace
// gone with its tasks) or an fd.
func openDir(e entry, mounts func() []procfs.Mount) (int, error) {
	if e.Parent != nil {
		fh := unix.NewFileHandle(e.Parent.Type, e.Parent.Bytes)
		var last error = fmt.Errorf("no mount of its filesystem (device %d:%d)", unix.Major(e.Dev), unix.Minor(e.Dev))
		for _, m := range mounts() {
			if m.Dev != e.Dev {
				continue
			}
			mnt, err := unix.Open(m.MountPoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			fd, err := unix.OpenByHandleAt(mnt, fh, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
			unix.Close(mnt)
			if err == nil || err == unix.ESTALE {
				return fd, err
			}
			last = os.NewSyscallError("open_by_handle_at", err)
		}
		if strings.HasPrefix(e.Path, "/proc/") {
			return -1, last
		}
	} else if strings.HasPrefix(e.Path, "/proc/") {
		return -1, errors.New("its directory has no handle, and its path went through /proc")
	}
	fd, err := unix.Open(filepath.Dir(e.Path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open", err)
	}
	return fd, nil
}

// mountsOnce reads crsub's mounts when first asked.
func mountsOnce() func() []procfs.Mount {
	var ms []procfs.Mount
	read := false
	return func() []procfs.Mount {
		if !read {
			ms, _ = procfs.ReadMountinfo(os.Getpid())
			read = true
		}
		return ms
	}
}

package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// File is a file being written for a destination path; Commit puts it in
// place, Abort drops it. Its mode is 0600: images hold process memory.
type File struct {
	*os.File
	dest string
	// temp is the temporary's name where the filesystem has no O_TMPFILE;
	// "" for an unnamed file.
	temp string
	done bool
}

// Create starts a file for dest, in dest's directory (so that the final
// link or rename stays on one filesystem). Temporaries that earlier, dead
// writers left for dest are removed first.
func Create(dest string) (*File, error) {
	dir := filepath.Dir(dest)
	removeStale(dest)
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return &File{File: os.NewFile(uintptr(fd), dest), dest: dest}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, &os.PathError{Op: "create in", Path: dir, Err: err}
	}
	// EISDIR and EINVAL are what kernels and filesystems without O_TMPFILE
	// say. A named temporary then, which dies with us only by cleanup.
	for range 10 {
		temp := tempName(dest, os.Getpid())
		f, err := os.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return &File{File: f, dest: dest, temp: temp}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	return nil, &os.PathError{Op: "create", Path: dest, Err: os.ErrExist}
}

// Commit syncs the file, puts it at its destination (replacing what was
// there) and syncs the directory. On error the destination is untouched
// and the file dropped.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: committed or aborted already")
	}
	defer f.Abort()
	fault.Phase("committing")
	if err := f.sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.dest, err)
	}
	if f.temp == "" {
		// An unnamed file can only be linked to a free name: link it to a
		// temporary one, then rename that over the destination. Killed in
		// between, the named temporary is what the next writer cleans.
		temp := tempName(f.dest, os.Getpid())
		proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
		if err := linkat(proc, temp); err != nil {
			return err
		}
		f.temp = temp
	}
	if err := rename(f.temp, f.dest); err != nil {
		return err
	}
	f.temp = ""
	return syncDir(filepath.Dir(f.dest))
}

// Abort drops the file unless it was committed; it is safe to call after
// Commit, so that a deferred Abort covers every failure.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	if f.temp != "" {
		os.Remove(f.temp)
	}
}

// Write writes b into the file.
func (f *File) Write(b []byte) (int, error) {
	if !fault.Enabled {
		return f.File.Write(b)
	}
	n, ferr := fault.Write(len(b))
	k, err := f.File.Write(b[:n])
	if err != nil {
		return k, err
	}
	return k, ferr
}

// WriteAt writes b at offset off: the holes a copy-on-write checkpoint
// leaves and fills later. Without it, *os.File's would be promoted, and
// those writes would go past the faults Write meets.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	if !fault.Enabled {
		return f.File.WriteAt(b, off)
	}
	n, ferr := fault.Write(len(b))
	k, err := f.File.WriteAt(b[:n], off)
	if err != nil {
		return k, err
	}
	return k, ferr
}

// ReadFrom copies r into the file. Without it, *os.File's would be
// promoted, and io.Copy would write past Write.
func (f *File) ReadFrom(r io.Reader) (int64, error) {
	if !fault.Enabled {
		return f.File.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{f}, r)
}

// The calls of a commit, each a place tests fail it at.

func (f *File) sync() error {
	if err := fault.Call("fsync"); err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return f.Sync()
}

func linkat(old, new string) error {
	err := fault.Call("linkat")
	if err == nil {
		err = unix.Linkat(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: old, New: new, Err: err}
	}
	return nil
}

func rename(old, new string) error {
	if err := fault.Call("rename"); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return os.Rename(old, new)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tempName is a hidden name beside dest that says whose it is:
// ".NAME.tmp-PID-RANDOM".
func tempName(dest string, pid int) string {
	return filepath.Join(filepath.Dir(dest), fmt.Sprintf(".%s.tmp-%d-%08x", filepath.Base(dest), pid, rand.Uint32()))
}

// removeStale removes the temporaries for dest whose writer is gone. A
// writer still alive (another crsub writing the same image) keeps its own.
func removeStale(dest string) {
	dir := filepath.Dir(dest)
	prefix := "." + filepath.Base(dest) + ".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || alive(pid) {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// alive reports whether pid is a running process. A pid reused since by
// another process keeps its writer's temporary until that one ends too:
// the safe side.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

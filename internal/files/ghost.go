package files

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/fsjournal"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A ghost is a file the tree holds open after its last name was removed: a
// regular file, a device node, a FIFO, a symbolic link (held O_PATH). It is
// an object record (the ghost) with its owner, mode and times, and a regular
// file's data extents as payload (holes stay holes) or a link's target;
// every description open on it depends on it.
// Restart makes the file again under its old name when that is free (else
// a hidden name beside it), removes the name, and keeps it open until the
// restart ends: the descriptions reopen it through crsub's fd.
//
// The ghost's record is written by the kinds whose files can be ghosts
// (regular, chardev, fifo, symlink) and by inotify for a watched one; regularKind
// restores it.

// isGhost says whether fd is open on a file whose last name is gone.
func isGhost(fd *Fd) bool { return fd.Link.Deleted && fd.Stat.Nlink == 0 }

type inodeKey struct{ dev, ino uint64 }

// dumpGhost writes the ghost record of the file fd is open on, once per
// inode, and returns its objref.
func dumpGhost(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	return dumpGhostFrom(c, fd, fmt.Sprintf("/proc/%d/fd/%d", fd.Pid, fd.Num))
}

// ExeGhost writes the ghost record of the executable of process pid, whose
// last name, path, was removed (a binary replaced by an upgrade), once per
// inode, and returns its objref: restart makes the file again, and it is
// the process's executable again (/proc/PID/exe). st is the file's stat.
func (c *DumpContext) ExeGhost(pid int, path string, st *unix.Stat_t) (ckpt.Objref, error) {
	fd := &Fd{Pid: pid, Num: -1, Link: procfs.FdLink{Kind: procfs.FdFile, Path: path, Deleted: true}, Stat: *st}
	return dumpGhostFrom(c, fd, fmt.Sprintf("/proc/%d/exe", pid))
}

// dumpGhostFrom is dumpGhost reading a regular file's data through source,
// a /proc link to it.
func dumpGhostFrom(c *DumpContext, fd *Fd, source string) (ckpt.Objref, error) {
	key := inodeKey{fd.Stat.Dev, fd.Stat.Ino}
	if ref, ok := c.ghosts[key]; ok {
		return ref, nil
	}
	st := &fd.Stat
	g := ckpt.Ghost{Path: fd.Link.Path, Dev: st.Dev, Inode: st.Ino, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano()}
	if c.MountNamespaceOf != nil && fd.Info.MntID != 0 {
		g.MountNamespace, _ = c.MountNamespaceOf(fd.Pid, fd.Info.MntID)
	}
	if g.MountNamespace == 0 {
		g.Path, g.MountNamespace = ghostPlace(c, fd)
	}
	if fileType(st) == unix.S_IFLNK {
		target, err := readlinkFd(fd.Copy)
		if err != nil {
			return 0, fmt.Errorf("removed symbolic link %s: %w", fd.Link.Path, err)
		}
		g.Target = target
	}
	ref := c.W.NewObjref()
	var err error
	if fileType(st) != unix.S_IFREG {
		err = c.W.Write(ckpt.TypeGhost, ref, nil, &g)
	} else {
		err = dumpGhostData(c, fd, ref, &g, source)
	}
	if err != nil {
		return 0, err
	}
	if c.ghosts == nil {
		c.ghosts = map[inodeKey]ckpt.Objref{}
	}
	c.ghosts[key] = ref
	return ref, nil
}

// ghostPlace is where the ghost of fd's file is made again, and the mount
// namespace of the image that path is in (0 for fd's process's): where it
// was, unless its directory is there but on another filesystem (the mount
// it was opened on is gone from its process's namespace), then beside a
// recorded mount of its own filesystem, one showing all of it first.
func ghostPlace(c *DumpContext, fd *Fd) (string, uint64) {
	var st unix.Stat_t
	dir := fmt.Sprintf("/proc/%d/root%s", fd.Pid, filepath.Dir(fd.Link.Path))
	if err := unix.Stat(dir, &st); err != nil || st.Dev == fd.Stat.Dev {
		return fd.Link.Path, 0
	}
	for _, v := range c.mountsOf(fd) {
		if err := unix.Stat(fmt.Sprintf("/proc/%d/root%s", v.Pid, v.Path), &st); err == nil && st.Dev == fd.Stat.Dev {
			return filepath.Join(v.Path, filepath.Base(fd.Link.Path)), v.Namespace
		}
	}
	return fd.Link.Path, 0
}

// dumpGhostData writes a regular ghost with its data extents, read through
// a description of crsub's own opened on source (the target's may be
// write-only, and its offset must not move).
func dumpGhostData(c *DumpContext, fd *Fd, ref ckpt.Objref, g *ckpt.Ghost, source string) error {
	r, err := os.OpenFile(source, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err != nil {
		r, err = os.OpenFile(source, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("reopening deleted %s to read it: %w", fd.Link.Path, err)
	}
	defer r.Close()
	g.Size = fd.Stat.Size
	g.Extents, err = dataExtents(func(off int64, whence int) (int64, error) {
		return unix.Seek(int(r.Fd()), off, whence)
	}, g.Size)
	if err != nil {
		return fmt.Errorf("the data of deleted %s: %w", fd.Link.Path, err)
	}
	var n int64
	for _, e := range g.Extents {
		n += e.Len
	}
	if n > MaxDeletedFileSize {
		return fmt.Errorf("deleted file %s holds %d bytes of data, more than the %d crsub stores", fd.Link.Path, n, MaxDeletedFileSize)
	}
	return c.W.WriteWithPayload(ckpt.TypeGhost, ref, nil, g, n, func(w io.Writer) error {
		for _, e := range g.Extents {
			if _, err := io.Copy(w, io.NewSectionReader(r, e.Off, e.Len)); err != nil {
				return err
			}
		}
		return nil
	})
}

// dataExtents lists the data of a file of size bytes, as lseek's
// SEEK_DATA and SEEK_HOLE find it. A filesystem without them has one
// extent, the whole file.
func dataExtents(seek func(off int64, whence int) (int64, error), size int64) ([]ckpt.Extent, error) {
	var ext []ckpt.Extent
	for off := int64(0); off < size; {
		data, err := seek(off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			return ext, nil // holes to the end
		case errors.Is(err, unix.EINVAL) && off == 0:
			return []ckpt.Extent{{Off: 0, Len: size}}, nil
		case err != nil:
			return nil, fmt.Errorf("SEEK_DATA from %d: %w", off, err)
		}
		if data >= size {
			return ext, nil
		}
		hole, err := seek(data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE from %d: %w", data, err)
		}
		hole = min(hole, size)
		if hole <= data {
			return nil, fmt.Errorf("SEEK_HOLE from %d gave %d", data, hole)
		}
		ext = append(ext, ckpt.Extent{Off: data, Len: hole - data})
		off = hole
	}
	return ext, nil
}

// restoreGhost makes a ghost's file again, removes its name, and keeps it
// open in crsub for the descriptions that depend on it.
func restoreGhost(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var g ckpt.Ghost
	if err := rec.Decode(&g); err != nil {
		return err
	}
	var n int64
	for _, e := range g.Extents {
		if e.Off < 0 || e.Len < 0 || e.Off+e.Len > g.Size {
			return fmt.Errorf("deleted %s: extent %d+%d outside its %d bytes", g.Path, e.Off, e.Len, g.Size)
		}
		n += e.Len
	}
	if n != rec.PayloadLen {
		return fmt.Errorf("deleted %s: %d bytes of extents, %d stored", g.Path, n, rec.PayloadLen)
	}
	// A symbolic link keeps its name until Close: its descriptions open
	// it by name, as O_NOFOLLOW through crsub's fd would open the link in
	// /proc instead, and they had O_NOFOLLOW.
	keep := g.Mode&unix.S_IFMT == unix.S_IFLNK
	// Made where t sees it (through its root, in a mount namespace of its
	// own), and named as t names it.
	at, ok := c.pathIn(t, g.MountNamespace, g.Path)
	if !ok {
		return fmt.Errorf("deleted %s, removed in mount namespace %d: that namespace is not made again here", g.Path, g.MountNamespace)
	}
	f, name, err := makeGhost(c.Journal, &g, rec.Payload(), keep, at)
	if errors.Is(err, unix.EROFS) && !keep {
		f, err = makeGhostOnClone(c.Journal, &g, rec.Payload(), at)
	}
	if err != nil {
		return fmt.Errorf("recreating deleted %s: %w", g.Path, err)
	}
	if prefix := strings.TrimSuffix(at, g.Path); prefix != "" && keep {
		name = strings.TrimPrefix(name, prefix)
	}
	if c.ghosts == nil {
		c.ghosts = map[ckpt.Objref]*os.File{}
	}
	c.ghosts[rec.Objref] = f
	if keep {
		if c.ghostNames == nil {
			c.ghostNames = map[ckpt.Objref]string{}
		}
		c.ghostNames[rec.Objref] = name
	}
	return nil
}

// makeGhostOnClone is makeGhost for a file whose mount is read-only now
// (remounted so after the file was removed): made through a writable
// copy of that mount, as the filesystem itself may be written. The copy
// goes when the file crsub holds is closed.
func makeGhostOnClone(j *fsjournal.Journal, g *ckpt.Ghost, data io.Reader, at string) (*os.File, error) {
	clone, err := writableClone(filepath.Dir(at))
	if err != nil {
		return nil, fmt.Errorf("a writable copy of its read-only mount: %w", err)
	}
	defer clone.Close()
	f, _, err := makeGhost(j, g, data, false, fmt.Sprintf("/proc/self/fd/%d/%s", clone.Int(), filepath.Base(at)))
	return f, err
}

// writableClone is a detached, writable copy of the mount of directory
// dir, showing dir. open_tree copies only a mount of the caller's mount
// namespace: one reached through /proc/PID/root (a namespace the restart
// made, HostPath) is copied from a thread that joined PID's.
func writableClone(dir string) (*sys.FD, error) {
	clone := func(path string) (*sys.FD, error) {
		fd, err := sys.CloneMount(unix.AT_FDCWD, path)
		if err != nil {
			return nil, err
		}
		if err := sys.SetMountAttr(fd.Int(), 0, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
			fd.Close()
			return nil, err
		}
		return fd, nil
	}
	rest, ok := strings.CutPrefix(dir, "/proc/")
	pid, inside, found := strings.Cut(rest, "/root")
	n, err := strconv.Atoi(pid)
	if !ok || !found || err != nil || n <= 0 || !strings.HasPrefix(inside+"/", "/") {
		return clone(dir)
	}
	pidfd, err := sys.PidfdOpen(n)
	if err != nil {
		return nil, err
	}
	defer pidfd.Close()
	var fd *sys.FD
	err = sys.InMountNamespace(pidfd.Int(), unix.CLONE_NEWNS, nil, func() error {
		var err error
		fd, err = clone(cmp.Or(inside, "/"))
		return err
	})
	return fd, err
}

// makeGhost creates the file at path at (its path as crsub reaches it) or
// under a free name beside it, gives it its contents, owner, mode and
// times, and removes the name again unless keepName. A regular file is
// filled before it has a name where the filesystem allows (O_TMPFILE):
// named only for the moment it is opened by its name, so that /proc
// shows that name. j lists the name while it is there.
func makeGhost(j *fsjournal.Journal, g *ckpt.Ghost, data io.Reader, keepName bool, at string) (_ *os.File, _ string, err error) {
	typ := g.Mode & unix.S_IFMT
	var unnamed *os.File
	if typ == unix.S_IFREG {
		if unnamed, err = filledUnnamed(g, data, ghostDir(at)); err != nil {
			return nil, "", err
		}
		if unnamed != nil {
			defer unnamed.Close()
		}
	}
	name, f, err := ghostName(at, func(name string) (*os.File, error) {
		if unnamed != nil {
			if err := j.Making(name, int(unnamed.Fd())); err != nil {
				return nil, err
			}
			err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(unnamed.Fd())), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
			if err != nil {
				_ = j.Removed(name)
			}
			return nil, err
		}
		if typ == unix.S_IFREG {
			return os.OpenFile(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		}
		if typ == unix.S_IFLNK {
			return nil, unix.Symlink(g.Target, name)
		}
		if typ != unix.S_IFCHR && typ != unix.S_IFBLK && typ != unix.S_IFIFO {
			return nil, fmt.Errorf("a file of type %#o", typ)
		}
		return nil, unix.Mknod(name, typ|0o600, int(g.Rdev))
	})
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if (err != nil || !keepName) && os.Remove(name) == nil {
			// Unsaid, the name gone is found gone by the next restart.
			_ = j.Removed(name)
		}
		if err != nil && f != nil {
			f.Close()
		}
	}()
	if unnamed == nil {
		if err := j.Made(name); err != nil {
			return nil, "", err
		}
	}
	if f != nil {
		if err := fill(f, g, data); err != nil {
			return nil, "", err
		}
	}
	if err := os.Lchown(name, int(g.UID), int(g.GID)); err != nil {
		return nil, "", err
	}
	// A symbolic link's mode is always 0777 (and chmod would follow it).
	if typ != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, name, g.Mode&0o7777, 0); err != nil {
			return nil, "", fmt.Errorf("chmod: %w", err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(g.Atime), unix.NsecToTimespec(g.Mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, "", fmt.Errorf("times: %w", err)
	}
	// Only held: a node is not opened here (a FIFO would block, a device
	// would do whatever its open does), and closing a regular file crsub
	// wrote would report IN_CLOSE_WRITE to the watches restored on it.
	held, err := os.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	if f != nil {
		f.Close()
	}
	return held, name, nil
}

// filledUnnamed is a regular ghost's file made without a name in dir
// (O_TMPFILE) and filled, or nil where the filesystem makes no such file.
func filledUnnamed(g *ckpt.Ghost, data io.Reader, dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return nil, nil // what filesystems without O_TMPFILE say
	}
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	if err := fill(f, g, data); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fill gives a regular ghost's file its size and data.
func fill(f *os.File, g *ckpt.Ghost, data io.Reader) error {
	if err := f.Truncate(g.Size); err != nil {
		return err
	}
	for _, e := range g.Extents {
		if _, err := io.CopyN(io.NewOffsetWriter(f, e.Off), data, e.Len); err != nil {
			return fmt.Errorf("refilling %d bytes at %d: %w", e.Len, e.Off, err)
		}
	}
	return nil
}

// ghostDir is the directory ghostName makes path's file in.
func ghostDir(path string) string {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return os.TempDir()
	}
	return dir
}

// ghostName creates a file for path with create: at path itself when it is
// free (so that /proc shows the name the program had), else under a hidden
// name beside it, or in the temporary directory if its directory is gone.
func ghostName(path string, create func(string) (*os.File, error)) (string, *os.File, error) {
	dir := ghostDir(path)
	if dir == filepath.Dir(path) {
		if f, err := create(path); err == nil || !errors.Is(err, unix.EEXIST) {
			return path, f, err
		}
	}
	for range 100 {
		name := filepath.Join(dir, fmt.Sprintf(".%s.crsub-ghost-%d", filepath.Base(path), rand.Uint32()))
		f, err := create(name)
		if err == nil || !errors.Is(err, unix.EEXIST) {
			return name, f, err
		}
	}
	return "", nil, fmt.Errorf("no free name beside %s", path)
}

// openGhost opens, in t, the ghost a file record depends on, with flags:
// through crsub's fd on it, a link that is followed even to a symbolic link
// (O_NOFOLLOW would open the link in /proc instead).
func openGhost(c *RestoreContext, t Target, rec *ckpt.Record, flags int) (int, error) {
	for _, d := range rec.Deps {
		if g := c.ghosts[d]; g != nil {
			return c.reopen(t, int(g.Fd()), flags)
		}
	}
	return -1, errors.New("its ghost record is missing")
}

// OpenGhost opens the file ghost ref made again in t, with flags (as for
// an executable whose name was removed, ExeGhost), and returns t's fd.
func (c *RestoreContext) OpenGhost(t Target, ref ckpt.Objref, flags int) (int, error) {
	g := c.ghosts[ref]
	if g == nil {
		return -1, fmt.Errorf("ghost record %d is missing", ref)
	}
	return c.reopen(t, int(g.Fd()), flags)
}

// openGhostOn is openGhost on the mount f was opened on (f.MountPoint),
// when that is known, which need not be the one its ghost was made on.
func openGhostOn(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File, flags int) (int, error) {
	if f.MountPoint == "" {
		return openGhost(c, t, rec, flags)
	}
	for _, d := range rec.Deps {
		if g := c.ghosts[d]; g != nil {
			local, err := unix.Dup(int(g.Fd()))
			if err != nil {
				return -1, os.NewSyscallError("dup", err)
			}
			local = onMountOf(c, t, f, local)
			defer unix.Close(local)
			return c.reopen(t, local, flags)
		}
	}
	return -1, errors.New("its ghost record is missing")
}

// RemovedDir makes a new, empty directory standing for the removed
// directory path (of inode ino on dev) of target t, once for every use of
// that inode in the restart (a working directory, directory fds): under
// its own name when it is free, else a hidden one beside it, where t sees
// it (through its root, in a mount namespace of its own), with the
// permissions of mode and owner uid, gid (a task root only in a user
// namespace of its own may not enter a directory crsub's root owns), and
// returns its name as t names it. Close removes it.
func (c *RestoreContext) RemovedDir(t Target, path string, dev, ino uint64, mode uint32, uid, gid int) (string, error) {
	key := inodeKey{dev, ino}
	if d, ok := c.dirs[key]; ok && ino != 0 {
		return d.name, nil
	}
	at := c.hostPath(t, path)
	prefix := strings.TrimSuffix(at, path)
	if _, err := os.Stat(filepath.Dir(at)); err != nil && prefix != "" {
		// Its directory is gone too: in t's own temporary directory,
		// which crsub's is not.
		at = prefix + filepath.Join("/tmp", filepath.Base(path))
	}
	host, _, err := ghostName(at, func(name string) (*os.File, error) {
		return nil, unix.Mkdir(name, 0o700)
	})
	if err != nil {
		return "", fmt.Errorf("recreating removed directory %s: %w", path, err)
	}
	if err := c.Journal.Made(host); err != nil {
		os.Remove(host)
		return "", fmt.Errorf("recreating removed directory %s: %w", path, err)
	}
	name := host
	if prefix != "" {
		var ok bool
		if name, ok = strings.CutPrefix(host, prefix); !ok {
			c.remove(host)
			return "", fmt.Errorf("recreating removed directory %s: its directory is gone too", path)
		}
	}
	if mode&0o7777 != 0 {
		_ = os.Chmod(host, os.FileMode(mode&0o777))
	}
	if uid != 0 || gid != 0 {
		if err := os.Lchown(host, uid, gid); err != nil {
			c.remove(host)
			return "", fmt.Errorf("recreating removed directory %s: %w", path, err)
		}
	}
	if c.dirs == nil {
		c.dirs = map[inodeKey]removedDir{}
	}
	c.dirs[key] = removedDir{name: name, host: host}
	return name, nil
}

// removedDir is a directory made for a removed one: its name as the
// target names it, and as crsub reaches it.
type removedDir struct{ name, host string }

// Close lets go of what the restart kept for the files of its processes
// (the pipes' anchors, the processes standing for dead ones, ghosts,
// removed directories, FIFO keepers, message queues) once they are all
// open.
func (c *RestoreContext) Close() {
	_ = c.releaseHeld() // settled already, but for a restart that failed
	c.reapDead()
	c.closePipes()
	c.closeUnixFiles()
	c.closeMQueues()
	for ref, f := range c.ghosts {
		f.Close()
		delete(c.ghosts, ref)
	}
	for ref, name := range c.ghostNames {
		c.remove(name)
		delete(c.ghostNames, ref)
	}
	for key, d := range c.dirs {
		c.remove(d.host)
		delete(c.dirs, key)
	}
	for ref, f := range c.fifos {
		f.Close()
		delete(c.fifos, ref)
	}
	if err := c.Journal.Close(); err != nil {
		c.warn("cannot remove the list of the names made for the restart", "err", err)
	}
	c.Journal = nil
}

func (c *RestoreContext) warn(msg string, args ...any) {
	if c.Log != nil {
		c.Log.Warn(msg, args...)
	}
}

// remove removes a name the restart made, and says so in the journal;
// a name it cannot remove stays listed, for the next restart.
func (c *RestoreContext) remove(name string) {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.warn("cannot remove a name made for the restart", "path", name, "err", err)
		return
	}
	if err := c.Journal.Removed(name); err != nil {
		c.warn("cannot list a name made for the restart as removed", "path", name, "err", err)
	}
}

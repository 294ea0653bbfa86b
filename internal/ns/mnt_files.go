package ns

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// The files of a filesystem made in a mount namespace (a tmpfs) are kept
// in the image as a tar archive (PAX, for nanosecond times and extended
// attributes), read from a copy of the mount of the whole of it that does
// not have the mounts below it: what they cover is kept too, and nothing
// of theirs. Sockets are left out: a bound socket makes its file again.

// xattrPrefix is how a PAX header names an extended attribute.
const xattrPrefix = "SCHILY.xattr."

// writeFiles writes the files under root (an fd on a directory, a mount
// of the filesystem) as a tar archive to w, named below prefix ("" or
// "a/b", the directory of the filesystem root shows). With contents
// false, regular files' contents are written as zeros: the archive has
// its size, for the record that precedes it. It returns how many
// entries it wrote.
func writeFiles(w io.Writer, root int, prefix string, contents bool) (int, error) {
	tw := tar.NewWriter(w)
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	d := &filesWriter{tw: tw, contents: contents, links: map[[2]uint64]string{}, dev: st.Dev}
	name := "."
	if prefix != "" {
		name = prefix
	}
	fd, err := unix.Openat(root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	if err := d.dir(fd, name); err != nil {
		return d.n, err
	}
	return d.n, tw.Close()
}

type filesWriter struct {
	tw       *tar.Writer
	contents bool
	links    map[[2]uint64]string // (dev, inode) of a file with more links → its first name
	n        int
	// dev is the filesystem's: a directory of another is a mount point
	// (of a mount that covers it), kept without what is in it.
	dev uint64
}

// dir writes directory fd (named name) and what is in it.
func (d *filesWriter) dir(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	h := header(&st, name+"/", tar.TypeDir)
	if err := addXattrs(h, fd); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := d.write(h); err != nil {
		return err
	}
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(dup), name)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, n := range names {
		if err := d.entry(fd, n, path.Join(name, n)); err != nil {
			return err
		}
	}
	return nil
}

// entry writes the file base in directory dirfd, named name.
func (d *filesWriter) entry(dirfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Dev != d.dev {
		typ := byte(tar.TypeDir)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			typ = tar.TypeReg
			st.Size = 0
		}
		h := header(&st, name, typ)
		if typ == tar.TypeDir {
			h.Name += "/"
		}
		return d.write(h)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: name, Err: err}
		}
		defer unix.Close(fd)
		return d.dir(fd, name)
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := d.links[key]; ok {
			h := header(&st, name, tar.TypeLink)
			h.Linkname = first
			return d.write(h)
		}
		if st.Nlink > 1 {
			d.links[key] = name
		}
		return d.regular(dirfd, base, name, &st)
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, base)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: name, Err: err}
		}
		h := header(&st, name, tar.TypeSymlink)
		h.Linkname = target
		return d.write(h)
	case unix.S_IFCHR, unix.S_IFBLK:
		typ := byte(tar.TypeChar)
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			typ = tar.TypeBlock
		}
		h := header(&st, name, typ)
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return d.write(h)
	case unix.S_IFIFO:
		return d.write(header(&st, name, tar.TypeFifo))
	}
	return nil // a socket: its bind makes it again
}

// regular writes regular file base of dirfd with its contents.
func (d *filesWriter) regular(dirfd int, base, name string, st *unix.Stat_t) error {
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	h := header(st, name, tar.TypeReg)
	h.Size = st.Size
	if err := addXattrs(h, fd); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := d.write(h); err != nil {
		return err
	}
	var src io.Reader = zeros{}
	if d.contents {
		src = f
	}
	if _, err := io.CopyN(d.tw, src, st.Size); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (d *filesWriter) write(h *tar.Header) error {
	d.n++
	return d.tw.WriteHeader(h)
}

// zeros reads as zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// header is a tar header for a file with stat st.
func header(st *unix.Stat_t, name string, typ byte) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), AccessTime: time.Unix(st.Atim.Unix()), Format: tar.FormatPAX}
}

// addXattrs adds the extended attributes of open file fd to h.
func addXattrs(h *tar.Header, fd int) error {
	size, err := unix.Flistxattr(fd, nil)
	if err == unix.ENOTSUP || size == 0 {
		return nil
	}
	if err != nil {
		return os.NewSyscallError("listxattr", err)
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(fd, buf); err != nil {
		return os.NewSyscallError("listxattr", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		n, err := unix.Fgetxattr(fd, name, v)
		if err != nil {
			return os.NewSyscallError("getxattr", fmt.Errorf("%s: %w", name, err))
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[xattrPrefix+name] = string(v[:n])
	}
	return nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// readFiles makes the files of tar archive r, size bytes, under root (an
// fd on the root of a filesystem made anew: a mount of the whole of it),
// with their owners, modes, times and extended attributes. Mount points
// made before are taken as they are. It returns how many entries it read.
// The files' contents cannot add up to more than the archive (crsub
// writes no sparse entries, whose holes would be written out as zeros).
func readFiles(r io.Reader, size int64, root int) (int, error) {
	tr := tar.NewReader(io.LimitReader(r, size))
	type dirTimes struct {
		name      string
		atime, mt time.Time
	}
	var dirs []dirTimes
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		n++
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return n, fmt.Errorf("%q: a name outside the filesystem", h.Name)
		}
		if h.Size > size {
			return n, fmt.Errorf("%s: %d bytes, more than the archive holds", name, h.Size)
		}
		size -= h.Size
		if err := readEntry(tr, h, root, name); err != nil {
			return n, fmt.Errorf("%s: %w", name, err)
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{name, h.AccessTime, h.ModTime})
		}
	}
	// A directory's times last: what was made in it changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		ts := []unix.Timespec{unix.NsecToTimespec(d.atime.UnixNano()), unix.NsecToTimespec(d.mt.UnixNano())}
		fd, err := sys.OpenBeneath(root, d.name)
		if err != nil {
			return n, err
		}
		err = unix.UtimesNanoAt(fd.Int(), "", ts, unix.AT_EMPTY_PATH)
		fd.Close()
		if err != nil {
			return n, &os.PathError{Op: "utimensat", Path: d.name, Err: err}
		}
	}
	return n, nil
}

// readEntry makes the file of header h, name, under root.
func readEntry(tr *tar.Reader, h *tar.Header, root int, name string) error {
	dir, base := path.Split(name)
	parent := root
	if dir != "" {
		if err := mkdirAllBeneath(root, dir); err != nil {
			return err
		}
		fd, err := sys.OpenBeneath(root, path.Clean(dir))
		if err != nil {
			return err
		}
		defer fd.Close()
		parent = fd.Int()
	}
	if name == "." {
		base = "."
	}
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeDir:
		if base != "." {
			if err := unix.Mkdirat(parent, base, 0o700); err != nil && err != unix.EEXIST {
				return os.NewSyscallError("mkdirat", err)
			}
		}
		fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("open", err)
		}
		defer unix.Close(fd)
		return setAttrs(fd, h, mode)
	case tar.TypeReg:
		// Non-blocking: a FIFO already there would wait for a reader.
		fd, err := unix.Openat(parent, base, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return os.NewSyscallError("open", err)
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("not a regular file there already")
		}
		if _, err := io.Copy(f, tr); err != nil {
			return err
		}
		if err := setAttrs(fd, h, mode); err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(h.AccessTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		return os.NewSyscallError("futimens", unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH))
	case tar.TypeLink:
		target := path.Clean(h.Linkname)
		if path.IsAbs(target) || strings.HasPrefix(target, "../") {
			return fmt.Errorf("a hard link to %q, outside the filesystem", h.Linkname)
		}
		tdir, tbase := path.Split(target)
		from := root
		if tdir != "" {
			fd, err := sys.OpenBeneath(root, path.Clean(tdir))
			if err != nil {
				return err
			}
			defer fd.Close()
			from = fd.Int()
		}
		return os.NewSyscallError("linkat", unix.Linkat(from, tbase, parent, base, 0))
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, parent, base); err != nil {
			return os.NewSyscallError("symlinkat", err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknodat(parent, base, typ|mode, int(dev)); err != nil && !(err == unix.EEXIST && isNode(parent, base, typ, dev)) {
			// One there already is the root of a mount of it, made first.
			return os.NewSyscallError("mknodat", err)
		}
		if err := unix.Fchmodat(parent, base, mode, 0); err != nil {
			return os.NewSyscallError("fchmodat", err)
		}
	default:
		return fmt.Errorf("tar entry type %q is not one crsub writes", h.Typeflag)
	}
	if err := unix.Fchownat(parent, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(h.AccessTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	return os.NewSyscallError("utimensat", unix.UtimesNanoAt(parent, base, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// isNode says whether name under dirfd is a node of type typ and device
// dev.
func isNode(dirfd int, name string, typ uint32, dev uint64) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == typ && (typ == unix.S_IFIFO || st.Rdev == dev)
}

// setAttrs gives open file fd h's owner, mode (after the owner: chown
// clears set-id bits) and extended attributes.
func setAttrs(fd int, h *tar.Header, mode uint32) error {
	if err := unix.Fchown(fd, h.Uid, h.Gid); err != nil {
		return os.NewSyscallError("fchown", err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			return os.NewSyscallError("setxattr", fmt.Errorf("%s: %w", name, err))
		}
	}
	return nil
}

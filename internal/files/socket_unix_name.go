package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// What the unix socket kinds share about the path a socket is bound to.
// The checkpoint finds the file the bind made (SIOCUNIXFILE) rather than
// trusting the path: a relative name is kept with the directory it was
// bound in, and a file removed since (unlinked, replaced by another socket
// or a FIFO, its directory removed) is marked deleted. A restart binds
// such a socket at its path as CRIU does (what is there moved aside, the
// missing directories made, for the time of the bind), keeps an O_PATH fd
// on the new file, then removes it and puts the path back as it was. The
// tree's sockets that were connected to a bound one connect to it through
// that fd (/proc/PID/fd/N), which leads to its file whatever its path
// leads to now.

// recordUnixName records in s the name a unix socket is bound to and what
// became of the file its bind made: its mode and owner, for a relative name
// the directory it was bound in, and whether it was removed since.
func recordUnixName(fd *Fd, name string, s *ckpt.Socket) {
	s.Local = name
	if name == "" || name[0] == '@' {
		return
	}
	file, err := sys.UnixSocketFile(int(fd.Copy.Fd()))
	if err != nil {
		// Without CAP_NET_ADMIN: the path is all there is to go by.
		s.File = socketFileAt(fd.Pid, name)
		return
	}
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(file.Int(), &st); err != nil {
		return
	}
	s.File = &ckpt.SocketFile{Mode: st.Mode &^ unix.S_IFMT, UID: st.Uid, GID: st.Gid}
	s.Deleted = st.Nlink == 0
	where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(file.Int()))
	if err != nil || name[0] == '/' {
		return
	}
	if s.Deleted {
		where = strings.TrimSuffix(where, " (deleted)")
	}
	if dir, ok := strings.CutSuffix(where, "/"+name); ok && strings.HasPrefix(where, "/") {
		if dir == "" {
			dir = "/"
		}
		s.Dir = dir
	}
}

// socketFileAt returns the mode and owner of the file at the path a unix
// socket of process pid is bound to, nil for a file gone or not a socket.
func socketFileAt(pid int, name string) *ckpt.SocketFile {
	// As the process resolves it: in its mount namespace, from its root.
	path := fmt.Sprintf("/proc/%d/root%s", pid, name)
	if name[0] != '/' {
		path = fmt.Sprintf("/proc/%d/cwd/%s", pid, name)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil
	}
	return &ckpt.SocketFile{Mode: st.Mode &^ unix.S_IFMT, UID: st.Uid, GID: st.Gid}
}

// bindUnix binds the target's socket fd, which stands for the image's
// socket of inode ino, to s.Local as that socket was bound: in s.Dir for a
// relative name, and removed again if it was (s.Deleted). A path's file
// gets its mode and owner, and crsub keeps an O_PATH fd on it until Close
// (connectUnix).
func bindUnix(c *RestoreContext, t Target, fd int, ino uint64, s *ckpt.Socket) error {
	raw, err := unixSockaddr(s.Local)
	if err != nil {
		return err
	}
	if s.Local[0] == '@' {
		return bindIn(t, fd, raw, "", s.Local)
	}
	path := s.Local
	if path[0] != '/' && s.Dir != "" {
		path = filepath.Join(s.Dir, path)
	}
	// The path as crsub reaches it: through the target's root.
	host := c.hostPath(t, path)
	if !s.Deleted {
		if err := clearStaleSocket(c, t, path, s.Type); err != nil {
			return err
		}
		if err := bindIn(t, fd, raw, s.Dir, s.Local); err != nil {
			return err
		}
		return keepUnixFile(c, t, fd, ino, host, s.File)
	}
	// Removed since: bound at a path cleared for the time of the bind.
	made, err := makeDirs(filepath.Dir(host))
	if err != nil {
		return fmt.Errorf("bind %s, removed since: %w", s.Local, err)
	}
	defer removeDirs(filepath.Dir(host), made)
	parked, err := parkAside(host)
	if err != nil {
		return fmt.Errorf("bind %s, removed since: %w", s.Local, err)
	}
	if parked != "" {
		defer os.Rename(parked, host)
	}
	if err := bindIn(t, fd, raw, s.Dir, s.Local); err != nil {
		return err
	}
	err = keepUnixFile(c, t, fd, ino, host, s.File)
	if rerr := os.Remove(host); rerr != nil && err == nil {
		err = fmt.Errorf("removing %s again: %w", path, rerr)
	}
	return err
}

// bindIn binds the target's fd to the sockaddr raw (of name), in directory
// dir if it is set: the target's working directory goes there for the
// bind, so that the socket keeps its relative name.
func bindIn(t Target, fd int, raw []byte, dir, name string) error {
	if dir != "" && name[0] != '/' && name[0] != '@' {
		back, err := t.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("the working directory: %w", err)
		}
		defer func() {
			_, _ = t.Syscall(unix.SYS_FCHDIR, uint64(back))
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(back))
		}()
		addr, err := t.Scratch(append([]byte(dir), 0))
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_CHDIR, addr); err != nil {
			return fmt.Errorf("chdir %s to bind %s: %w", dir, name, err)
		}
	}
	addr, err := t.Scratch(raw)
	if err != nil {
		return fmt.Errorf("bind %s: %w", name, err)
	}
	// An abstract name can stay taken after the image's own socket died
	// with its process: a socket in flight (queued in a message, as on a
	// pair carrying its own ends) is freed only by the kernel's unix
	// garbage collector, which a release of some unix socket starts.
	for wait := time.Millisecond; ; wait *= 2 {
		_, err = t.Syscall(unix.SYS_BIND, uint64(fd), addr, uint64(len(raw)))
		if err == nil {
			return nil
		}
		if name[0] != '@' || !errors.Is(err, unix.EADDRINUSE) || wait > time.Second {
			return fmt.Errorf("bind %s: %w", name, err)
		}
		if err := sys.RunUnixGC(); err != nil {
			return fmt.Errorf("bind %s: %w", name, err)
		}
		time.Sleep(wait)
	}
}

// keepUnixFile gives the file at path (as crsub reaches it) the bind of
// the target's fd made the image's mode and owner (sf), and keeps an
// O_PATH fd on it, by the image socket's inode.
func keepUnixFile(c *RestoreContext, t Target, fd int, ino uint64, path string, sf *ckpt.SocketFile) error {
	local, err := t.Copy(fd)
	if err != nil {
		return err
	}
	defer local.Close()
	file, err := sys.UnixSocketFile(int(local.Fd()))
	if err != nil {
		// Without CAP_NET_ADMIN: by path, and connected to by name.
		file = nil
	} else {
		path = "/proc/self/fd/" + strconv.Itoa(file.Int())
	}
	if sf != nil {
		err := unix.Chown(path, int(sf.UID), int(sf.GID))
		if err == nil {
			err = unix.Chmod(path, sf.Mode)
		}
		if err != nil {
			file.Close()
			return fmt.Errorf("mode %#o and owner %d:%d of its socket file: %w", sf.Mode, sf.UID, sf.GID, os.NewSyscallError("chown/chmod", err))
		}
	}
	if file == nil {
		return nil
	}
	if c.unixFiles == nil {
		c.unixFiles = map[uint64]*sys.FD{}
	}
	if old := c.unixFiles[ino]; old != nil {
		old.Close()
	}
	c.unixFiles[ino] = file
	return nil
}

// unixAddr is the address a restored socket connects (or sends) to for the
// image's socket of inode ino bound to name: the file of that socket if
// the tree's was restored bound (as crsub holds it: pid is crsub's pid as
// the connecting process sees it, 0 for "self"), its name otherwise. A
// target t in a mount namespace of its own, whose /proc is another, has
// only the name (its connect resolves it in its namespace); t is nil when
// crsub connects.
func (c *RestoreContext) unixAddr(t Target, ino uint64, name string, pid int) ([]byte, string, error) {
	if file := c.unixFiles[ino]; ino != 0 && file != nil && (t == nil || c.hostPath(t, "/") == "/") {
		who := "self"
		if pid != 0 {
			who = strconv.Itoa(pid)
		}
		path := "/proc/" + who + "/fd/" + strconv.Itoa(file.Int())
		raw, err := unixSockaddr(path)
		return raw, path, err
	}
	raw, err := unixSockaddr(name)
	return raw, name, err
}

// closeUnixFiles lets go of the restored sockets' files.
func (c *RestoreContext) closeUnixFiles() {
	for ino, f := range c.unixFiles {
		f.Close()
		delete(c.unixFiles, ino)
	}
}

// makeDirs makes dir and any directory above it that is missing, owned as
// the directory they are made in is (the task binding there, root only in
// a user namespace of its own, may not write in a directory crsub's root
// owns), and returns the topmost one it made ("" if dir was there).
func makeDirs(dir string) (string, error) {
	top := ""
	var parent unix.Stat_t
	for d := dir; ; d = filepath.Dir(d) {
		if err := unix.Lstat(d, &parent); err == nil {
			break
		} else if !errors.Is(err, unix.ENOENT) {
			return "", &os.PathError{Op: "lstat", Path: d, Err: err}
		}
		top = d
		if d == filepath.Dir(d) {
			break
		}
	}
	if top == "" {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := os.Lchown(d, int(parent.Uid), int(parent.Gid)); err != nil {
			removeDirs(dir, top)
			return "", err
		}
		if d == top {
			break
		}
	}
	return top, nil
}

// removeDirs removes dir and the directories above it up to top, which
// makeDirs made.
func removeDirs(dir, top string) {
	if top == "" {
		return
	}
	for d := dir; ; d = filepath.Dir(d) {
		if os.Remove(d) != nil || d == top || d == filepath.Dir(d) {
			return
		}
	}
}

// parkAside moves what is at path to a free name beside it and returns
// that name ("" if nothing is at path).
func parkAside(path string) (string, error) {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	for i := 0; i < 100; i++ {
		parked := fmt.Sprintf("%s.crsub-parked-%d", path, i)
		if _, err := os.Lstat(parked); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.Rename(path, parked); err != nil {
			return "", fmt.Errorf("moving %s aside: %w", path, err)
		}
		return parked, nil
	}
	return "", fmt.Errorf("no free name beside %s to move it aside", path)
}

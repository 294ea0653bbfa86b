package files

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A memfd is an object record with its contents, name, size and seals,
// written the first time the checkpoint meets it, through an fd or a
// mapping; every fd and every mapping of it depends on it, so that after a
// restart writes through either are seen by both, as before.
var memfdKind = &Kind{
	Files:  []string{ckpt.FileMemfd},
	Claims: func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdMemfd },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		obj, err := DumpMemfd(c, fd.Copy, fd.Link.Path)
		if err != nil {
			return 0, fmt.Errorf("memfd %s: %w", fd.Link.Path, err)
		}
		f := ckpt.File{Kind: ckpt.FileMemfd, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Pos: fd.Info.Pos, Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, []ckpt.Objref{obj}, &f)
	},
	Restore: restoreMemfdFd,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeMemfd: restoreMemfd},
}

// MemfdName is the name of a memfd from its /proc path ("/memfd:NAME").
func MemfdName(path string) string { return strings.TrimPrefix(path, "/memfd:") }

// DumpMemfd writes the memfd object f is open on, unless written already,
// and returns its objref.
func DumpMemfd(c *DumpContext, f *os.File, name string) (ckpt.Objref, error) {
	return DumpSharedObject(c, f, name, nil)
}

// DumpSharedObject is DumpMemfd for any shared memory object a mapping
// holds: a memfd, an unlinked file, or a System V segment (sysv set).
func DumpSharedObject(c *DumpContext, f *os.File, name string, sysv *ckpt.SysVShm) (ckpt.Objref, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	if ref, ok := c.Memfds[inodeKey{st.Dev, st.Ino}]; ok {
		return ref, nil
	}
	if st.Size > MaxDeletedFileSize {
		return 0, fmt.Errorf("holds %d bytes, more than the %d crsub stores", st.Size, MaxDeletedFileSize)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		seals = 0 // created without MFD_ALLOW_SEALING
	}
	m := ckpt.Memfd{Name: MemfdName(name), Inode: st.Ino, Size: st.Size, Seals: seals, Mode: st.Mode & 0o7777, SysV: sysv,
		SharedAnon: sysv == nil && name == sharedAnonName && st.Nlink == 0}
	ref := c.W.NewObjref()
	if err := c.W.WriteWithPayload(ckpt.TypeMemfd, ref, nil, &m, st.Size, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, st.Size))
		return err
	}); err != nil {
		return 0, err
	}
	if c.Memfds == nil {
		c.Memfds = map[inodeKey]ckpt.Objref{}
	}
	c.Memfds[inodeKey{st.Dev, st.Ino}] = ref
	return ref, nil
}

// sharedAnonName is the name the kernel gives the file of shared anonymous
// memory ("/dev/zero (deleted)" in /proc).
const sharedAnonName = "/dev/zero"

// RestoredMemfd is a memfd recreated in one process of the tree.
type RestoredMemfd struct {
	Pid, Fd int
	// Inode is the object's inode in the image, for shared anonymous
	// memory (ckpt.Memfd.SharedAnon; 0 otherwise): its shared mappings
	// find it by that (SharedAnonObject).
	Inode uint64
	// Taken says a read-write fd of the image has the description
	// memfd_create made; the others are opened again.
	Taken bool
}

// restoreMemfd recreates a memfd object in t and refills it.
func restoreMemfd(c *RestoreContext, t Target, rec *ckpt.Record) error {
	var m ckpt.Memfd
	if err := rec.Decode(&m); err != nil {
		return err
	}
	if m.Size != rec.PayloadLen {
		return fmt.Errorf("memfd %s: size %d, %d bytes stored", m.Name, m.Size, rec.PayloadLen)
	}
	if m.SysV != nil {
		return restoreSysVShm(c, rec, &m)
	}
	var fd int
	var err error
	if m.SharedAnon && m.Size > 0 {
		fd, err = newSharedAnon(t, m.Size)
	} else {
		fd, err = newMemfd(t, m.Name)
	}
	if err != nil {
		return err
	}
	rm := &RestoredMemfd{Pid: t.Pid(), Fd: fd}
	if m.SharedAnon {
		rm.Inode = m.Inode
	}
	if c.Memfds == nil {
		c.Memfds = map[ckpt.Objref]*RestoredMemfd{}
	}
	c.Memfds[rec.Objref] = rm
	t.Hold(&rm.Fd)
	local, err := t.Copy(rm.Fd)
	if err != nil {
		return err
	}
	defer local.Close()
	if st, err := local.Stat(); err != nil || st.Size() != m.Size {
		if err := local.Truncate(m.Size); err != nil {
			return fmt.Errorf("memfd %s: %w", m.Name, err)
		}
	}
	if m.Mode != 0 {
		if err := local.Chmod(os.FileMode(m.Mode & 0o777)); err != nil {
			return fmt.Errorf("memfd %s: mode %#o: %w", m.Name, m.Mode, err)
		}
	}
	if _, err := io.Copy(io.NewOffsetWriter(local, 0), rec.Payload()); err != nil {
		return fmt.Errorf("memfd %s: refilling: %w", m.Name, err)
	}
	// Seals as it had them: a mapping it had is compatible with them, or
	// it could not have been sealed. F_SEAL_FUTURE_WRITE would forbid the
	// writable mappings still to be made, so it is not set again.
	// (Shared anonymous memory is born with F_SEAL_SEAL, and takes no
	// other.)
	if seals := m.Seals &^ unix.F_SEAL_FUTURE_WRITE; seals != 0 && !m.SharedAnon {
		if _, err := unix.FcntlInt(local.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			return fmt.Errorf("memfd %s: seals %#x: %w", m.Name, seals, err)
		}
	}
	return nil
}

// newMemfd makes a memfd named name in t and returns the target's fd.
func newMemfd(t Target, name string) (int, error) {
	if len(name) > 249 {
		name = name[:249]
	}
	addr, err := t.Scratch(append([]byte(name), 0))
	if err != nil {
		return -1, err
	}
	fd, err := t.Syscall(unix.SYS_MEMFD_CREATE, addr, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create %s: %w", name, err)
	}
	return int(fd), nil
}

// newSharedAnon makes shared anonymous memory of size bytes in t as a
// program does, MAP_SHARED|MAP_ANONYMOUS, and returns the target's fd on
// its file (through /proc/self/map_files), the mapping gone.
func newSharedAnon(t Target, size int64) (int, error) {
	page := uint64(os.Getpagesize())
	length := (uint64(size) + page - 1) &^ (page - 1)
	at, err := t.Syscall(unix.SYS_MMAP, 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return -1, fmt.Errorf("mmap of shared anonymous memory (%d bytes): %w", size, err)
	}
	fd, err := t.Open(fmt.Sprintf("/proc/self/map_files/%x-%x", at, at+length), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if _, uerr := t.Syscall(unix.SYS_MUNMAP, at, length); uerr != nil && err == nil {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, fmt.Errorf("munmap: %w", uerr)
	}
	if err != nil {
		return -1, fmt.Errorf("shared anonymous memory: %w", err)
	}
	return fd, nil
}

// SharedAnonObject returns the shared anonymous memory object of inode ino
// (as the image knows it) restored for a private mapping or an fd of it,
// which the shared mappings of that inode map.
func SharedAnonObject(c *RestoreContext, ino uint64) (ckpt.Objref, bool) {
	for ref, rm := range c.Memfds {
		if ino != 0 && rm.Inode == ino {
			return ref, true
		}
	}
	return 0, false
}

// MemfdIn returns a fd in t on the memfd object ref, wherever in the tree
// it was recreated: for O_RDWR (a shared writable mapping), on the
// description memfd_create made, otherwise a new description opened with
// flags.
func MemfdIn(c *RestoreContext, t Target, ref ckpt.Objref, flags int) (int, error) {
	rm := c.Memfds[ref]
	if rm == nil {
		return -1, fmt.Errorf("memfd object %d was not restored", ref)
	}
	return memfdFd(c, t, rm, flags, flags&unix.O_ACCMODE == unix.O_RDWR)
}

// memfdFd returns a fd in t on a restored memfd: on the description
// memfd_create made (own), or a new one opened with flags. The kernel does
// not count memfd_create's description as a writer; a read-write reopen is
// one, and makes execveat of the memfd fail with ETXTBSY as long as it is
// open or mapped.
func memfdFd(c *RestoreContext, t Target, rm *RestoredMemfd, flags int, own bool) (int, error) {
	local := rm.Fd
	if rm.Pid != t.Pid() {
		var err error
		if local, err = c.Transfer(rm.Pid, rm.Fd, t); err != nil {
			return -1, err
		}
		if own {
			return local, nil
		}
		defer t.Syscall(unix.SYS_CLOSE, uint64(local))
	} else if own {
		fd, err := t.Syscall(unix.SYS_FCNTL, uint64(local), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("dup: %w", err)
		}
		return int(fd), nil
	}
	// Reopening through /proc gives a description of its own, with the
	// flags the image recorded, as the program had.
	return t.Open(fmt.Sprintf("/proc/self/fd/%d", local), flags, 0)
}

func restoreMemfdFd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var rm *RestoredMemfd
	for _, d := range rec.Deps {
		if m, ok := c.Memfds[d]; ok {
			rm = m
		}
	}
	if rm == nil {
		return -1, fmt.Errorf("memfd %s: its memfd record is missing", f.Path)
	}
	// The first read-write description is memfd_create's own, as it most
	// likely was; any other is opened again.
	own := f.Flags&unix.O_ACCMODE == unix.O_RDWR && !rm.Taken
	fd, err := memfdFd(c, t, rm, reopenFlags(f.Flags), own)
	if err != nil {
		return -1, fmt.Errorf("memfd %s: %w", f.Path, err)
	}
	if own {
		rm.Taken = true
		if fl := f.Flags & (unix.O_APPEND | unix.O_NONBLOCK); fl != 0 {
			if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(fl)); err != nil {
				return -1, fmt.Errorf("memfd %s: fcntl F_SETFL: %w", f.Path, err)
			}
		}
	}
	return fd, seek(t, fd, f.Pos)
}

// RestoredSysVShm is a System V shared memory segment restored: the one
// with the image's id, still there or made again.
type RestoredSysVShm struct {
	ID int
	// Size is the segment's, in bytes: shmat maps all of it.
	Size uint64
	// Remove says the segment was removed (IPC_RMID) when checkpointed:
	// done once a process of the tree has it attached again.
	Remove bool
}

// restoreSysVShm finds or remakes the segment of an image's System V
// shared memory object. A segment with the image's id and key that still
// exists is the same one (killing the checkpointed processes does not
// remove it) and is taken as it is, contents included, as a shared file
// would be. Otherwise it is made again with that id (shm_next_id), key,
// size and mode, and filled from the image.
func restoreSysVShm(c *RestoreContext, rec *ckpt.Record, m *ckpt.Memfd) error {
	sv := m.SysV
	if c.SysVShm == nil {
		c.SysVShm = map[ckpt.Objref]*RestoredSysVShm{}
	}
	what := fmt.Sprintf("System V shared memory segment %d (key %#x)", sv.ID, uint32(sv.Key))
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(sv.ID, unix.IPC_STAT, &desc); err == nil && desc.Perm.Key == sv.Key && int64(desc.Segsz) == m.Size && !sv.Removed {
		c.SysVShm[rec.Objref] = &RestoredSysVShm{ID: sv.ID, Size: uint64(m.Size)}
		return nil
	}
	if err := MakeSysVShm(sv, m.Size, rec.Payload()); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c.SysVShm[rec.Objref] = &RestoredSysVShm{ID: sv.ID, Size: uint64(m.Size), Remove: sv.Removed}
	return nil
}

// MakeSysVShm makes System V segment sv again in the calling thread's IPC
// namespace, with its id (through /proc/sys/kernel/shm_next_id,
// CAP_SYS_ADMIN in the namespace), key, size, owner and mode, filled with
// size bytes of contents. A segment that was removed is made without its
// key; it is removed again once attached (RestoredSysVShm.Remove).
func MakeSysVShm(sv *ckpt.SysVShm, size int64, contents io.Reader) error {
	key := int(sv.Key)
	if sv.Removed {
		key = unix.IPC_PRIVATE // removed, it has no key any more
	}
	id, err := sys.WithNextID("shm_next_id", sv.ID, func() (int, error) {
		id, err := unix.SysvShmGet(key, int(size), unix.IPC_CREAT|unix.IPC_EXCL|int(sv.Mode&0o777))
		return id, os.NewSyscallError("shmget", err)
	})
	if err != nil {
		return err
	}
	if id != sv.ID {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return fmt.Errorf("made again as %d: its id is taken", id)
	}
	var mem []byte
	if size > 0 {
		if mem, err = unix.SysvShmAttach(id, 0, 0); err == nil {
			_, err = io.ReadFull(contents, mem[:size])
			if derr := unix.SysvShmDetach(mem); err == nil {
				err = derr
			}
		}
	}
	if err == nil {
		var desc unix.SysvShmDesc
		if _, err = unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err == nil {
			desc.Perm.Uid, desc.Perm.Gid, desc.Perm.Mode = sv.UID, sv.GID, sv.Mode
			_, err = unix.SysvShmCtl(id, unix.IPC_SET, &desc)
		}
	}
	if err != nil {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return fmt.Errorf("refilling: %w", err)
	}
	return nil
}

package files

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A memfd is an object record with its contents, name, size and seals,
// written the first time the checkpoint meets it, through an fd or a
// mapping; every fd and every mapping of it depends on it, so that after a
// restart writes through either are seen by both, as before.
var memfdKind = &Kind{
	Name:   ckpt.FileMemfd,
	Claims: func(fd *Fd) bool { return fd.Link.Kind == procfs.FdMemfd },
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
}

// MemfdName is the name of a memfd from its /proc path ("/memfd:NAME").
func MemfdName(path string) string { return strings.TrimPrefix(path, "/memfd:") }

// DumpMemfd writes the memfd object f is open on, unless written already,
// and returns its objref.
func DumpMemfd(c *DumpContext, f *os.File, name string) (ckpt.Objref, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	if ref, ok := c.Memfds[st.Ino]; ok {
		return ref, nil
	}
	if st.Size > MaxDeletedFileSize {
		return 0, fmt.Errorf("holds %d bytes, more than the %d crsub stores", st.Size, MaxDeletedFileSize)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		seals = 0 // created without MFD_ALLOW_SEALING
	}
	m := ckpt.Memfd{Name: MemfdName(name), Inode: st.Ino, Size: st.Size, Seals: seals}
	ref := c.W.NewObjref()
	if err := c.W.WriteWithPayload(ckpt.TypeMemfd, ref, nil, &m, st.Size, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, st.Size))
		return err
	}); err != nil {
		return 0, err
	}
	if c.Memfds == nil {
		c.Memfds = map[uint64]ckpt.Objref{}
	}
	c.Memfds[st.Ino] = ref
	return ref, nil
}

// RestoredMemfd is a memfd recreated in one process of the tree.
type RestoredMemfd struct {
	Pid, Fd int
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
	name := m.Name
	if len(name) > 249 {
		name = name[:249]
	}
	addr, err := t.Scratch(append([]byte(name), 0))
	if err != nil {
		return err
	}
	fdv, err := t.Syscall(unix.SYS_MEMFD_CREATE, addr, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("memfd_create %s: %w", m.Name, err)
	}
	rm := &RestoredMemfd{Pid: t.Pid(), Fd: int(fdv)}
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
	if err := local.Truncate(m.Size); err != nil {
		return fmt.Errorf("memfd %s: %w", m.Name, err)
	}
	if _, err := io.Copy(io.NewOffsetWriter(local, 0), rec.Payload()); err != nil {
		return fmt.Errorf("memfd %s: refilling: %w", m.Name, err)
	}
	// Seals as it had them: a mapping it had is compatible with them, or
	// it could not have been sealed. F_SEAL_FUTURE_WRITE would forbid the
	// writable mappings still to be made, so it is not set again.
	if seals := m.Seals &^ unix.F_SEAL_FUTURE_WRITE; seals != 0 {
		if _, err := unix.FcntlInt(local.Fd(), unix.F_ADD_SEALS, seals); err != nil {
			return fmt.Errorf("memfd %s: seals %#x: %w", m.Name, seals, err)
		}
	}
	return nil
}

// MemfdIn returns a fd in t on the memfd object ref (a new open file
// description, opened with flags), wherever in the tree it was recreated.
func MemfdIn(c *RestoreContext, t Target, ref ckpt.Objref, flags int) (int, error) {
	rm := c.Memfds[ref]
	if rm == nil {
		return -1, fmt.Errorf("memfd object %d was not restored", ref)
	}
	local := rm.Fd
	if rm.Pid != t.Pid() {
		var err error
		if local, err = c.Transfer(rm.Pid, rm.Fd, t); err != nil {
			return -1, err
		}
		defer t.Syscall(unix.SYS_CLOSE, uint64(local))
	}
	// Reopening through /proc gives a description of its own, with the
	// flags the image recorded, as the program had.
	return t.Open(fmt.Sprintf("/proc/self/fd/%d", local), flags, 0)
}

func restoreMemfdFd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var obj ckpt.Objref
	for _, d := range rec.Deps {
		if _, ok := c.Memfds[d]; ok {
			obj = d
		}
	}
	fd, err := MemfdIn(c, t, obj, reopenFlags(f.Flags))
	if err != nil {
		return -1, fmt.Errorf("memfd %s: %w", f.Path, err)
	}
	return fd, seek(t, fd, f.Pos)
}

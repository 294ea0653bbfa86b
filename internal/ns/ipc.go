package ns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// An IPC namespace holds System V shared memory segments, semaphore sets
// and message queues, POSIX message queues, and the limits that go with
// them. The System V objects are records of their own, each depending on
// the namespace: every one of them, used by the tree or not, as CRIU
// does, read from a thread in the namespace (a segment's contents through
// an attach of crsub's own, a queue's messages copied with MSG_COPY, which
// leaves them queued). Restart makes each again with its id (the
// namespace's *_next_id), key, owner and mode, and its contents. A POSIX
// message queue is dumped through the fds on it, as in crsub's namespace
// (internal/files/mqueue.go), and made again in the namespace of the task
// that holds it. Semaphore undo lists (SEM_UNDO) are not kept.
var ipcKind = &Kind{
	Name:        ckpt.NamespaceIPC,
	CloneFlag:   unix.CLONE_NEWIPC,
	Dump:        dumpIPC,
	DumpObjects: dumpIPCObjects,
	Restore:     restoreIPC,
	Objects: map[ckpt.Type]func(*RestoreContext, *Restored, *ckpt.Record) error{
		ckpt.TypeSysVShm: restoreSysVShm,
		ckpt.TypeSysVSem: restoreSysVSem,
		ckpt.TypeSysVMsg: restoreSysVMsg,
	},
}

// ipcSysctls are the files of /proc/sys that belong to the IPC namespace
// of the thread that opens them: its limits, and the ids its next System V
// objects get (-1: the lowest free), which making the image's objects
// again uses and puts back (withNextID).
var ipcSysctls = []string{
	"kernel/msg_next_id", "kernel/sem_next_id", "kernel/shm_next_id",
	"kernel/shmmax", "kernel/shmall", "kernel/shmmni", "kernel/shm_rmid_forced",
	"kernel/msgmax", "kernel/msgmnb", "kernel/msgmni", "kernel/sem",
	"fs/mqueue/queues_max", "fs/mqueue/msg_max", "fs/mqueue/msgsize_max",
	"fs/mqueue/msg_default", "fs/mqueue/msgsize_default",
}

func dumpIPC(_ *DumpContext, n *ckpt.Namespace, pid int) error {
	return Enter(pid, ckpt.NamespaceIPC, func() error {
		ipc := &ckpt.IPCNamespace{Sysctls: map[string]string{}}
		for _, name := range ipcSysctls {
			b, err := os.ReadFile("/proc/sys/" + name)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			ipc.Sysctls[name] = strings.TrimSpace(string(b))
		}
		n.IPC = ipc
		return nil
	})
}

// restoreIPC sets the namespace's limits where they differ from a new
// one's, before any object is made in it.
func restoreIPC(_ *RestoreContext, n *Restored) error {
	if n.Record.IPC == nil {
		return nil
	}
	return n.Do(func() error {
		for _, name := range ipcSysctls {
			want, ok := n.Record.IPC.Sysctls[name]
			if !ok {
				continue
			}
			path := "/proc/sys/" + name
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.Join(strings.Fields(string(b)), " ") == strings.Join(strings.Fields(want), " ") {
				continue
			}
			if err := os.WriteFile(path, []byte(want), 0); err != nil {
				return fmt.Errorf("setting %s to %q: %w", name, want, err)
			}
		}
		return nil
	})
}

// dumpIPCObjects writes the namespace's System V objects.
func dumpIPCObjects(c *DumpContext, n *ckpt.Namespace, ref ckpt.Objref) error {
	return Enter(n.Pid, ckpt.NamespaceIPC, func() error {
		segs, err := procfs.ReadSysVShm()
		if err != nil {
			return err
		}
		for _, g := range segs {
			if err := dumpSysVShm(c, n, ref, g); err != nil {
				return fmt.Errorf("System V shared memory segment %d: %w", g.ID, err)
			}
		}
		sems, err := procfs.ReadSysVSem()
		if err != nil {
			return err
		}
		for _, s := range sems {
			vals, err := sys.SemGetAll(s.ID, s.Nsems)
			if err != nil {
				return fmt.Errorf("System V semaphore set %d: %w", s.ID, err)
			}
			set := ckpt.SysVSemSet{ID: s.ID, Key: s.Key, Mode: s.Perms & 0o777, UID: s.UID, GID: s.GID, Values: vals}
			if err := c.W.Write(ckpt.TypeSysVSem, 0, []ckpt.Objref{ref}, &set); err != nil {
				return err
			}
		}
		msgs, err := procfs.ReadSysVMsg()
		if err != nil {
			return err
		}
		for _, q := range msgs {
			if err := dumpSysVMsg(c, ref, q); err != nil {
				return fmt.Errorf("System V message queue %d: %w", q.ID, err)
			}
		}
		return nil
	})
}

// shmDest is SHM_DEST in a segment's perms: removed, gone once detached.
const shmDest = 0o1000

func dumpSysVShm(c *DumpContext, n *ckpt.Namespace, ref ckpt.Objref, g procfs.SysVShm) error {
	seg := ckpt.SysVSegment{SysVShm: ckpt.SysVShm{ID: g.ID, Key: g.Key, Mode: g.Perms & 0o777, UID: g.UID, GID: g.GID, Removed: g.Perms&shmDest != 0}, Size: int64(g.Size)}
	mem, err := unix.SysvShmAttach(g.ID, 0, unix.SHM_RDONLY)
	if err != nil {
		return os.NewSyscallError("shmat", err)
	}
	defer unix.SysvShmDetach(mem)
	segRef := c.W.NewObjref()
	if err := c.W.WriteWithPayload(ckpt.TypeSysVShm, segRef, []ckpt.Objref{ref}, &seg, seg.Size, func(w io.Writer) error {
		_, err := w.Write(mem[:seg.Size])
		return err
	}); err != nil {
		return err
	}
	c.SysVShm[SysVKey{Namespace: n.Inode, ID: g.ID}] = segRef
	return nil
}

// sysvMessage is one message of a System V queue.
type sysvMessage struct {
	mtype int64
	text  []byte
}

func dumpSysVMsg(c *DumpContext, ref ckpt.Objref, q procfs.SysVMsg) error {
	b, err := os.ReadFile("/proc/sys/kernel/msgmax")
	if err != nil {
		return err
	}
	msgmax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("kernel/msgmax: %w", err)
	}
	qbytes, err := sys.MsgQbytes(q.ID)
	if err != nil {
		return err
	}
	var msgs []sysvMessage
	var size int64
	for i := range q.Qnum {
		mtype, text, err := sys.MsgCopyAt(q.ID, i, msgmax)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		msgs = append(msgs, sysvMessage{mtype, text})
		size += 12 + int64(len(text))
	}
	rec := ckpt.SysVMsgQueue{ID: q.ID, Key: q.Key, Mode: q.Perms & 0o777, UID: q.UID, GID: q.GID, Qbytes: qbytes, Messages: len(msgs)}
	return c.W.WriteWithPayload(ckpt.TypeSysVMsg, 0, []ckpt.Objref{ref}, &rec, size, func(w io.Writer) error {
		hdr := make([]byte, 12)
		for _, m := range msgs {
			binary.LittleEndian.PutUint64(hdr, uint64(m.mtype))
			binary.LittleEndian.PutUint32(hdr[8:], uint32(len(m.text)))
			if _, err := w.Write(hdr); err != nil {
				return err
			}
			if _, err := w.Write(m.text); err != nil {
				return err
			}
		}
		return nil
	})
}

// readSysVMessages reads n messages of a queue's payload; together they
// hold at most limit bytes of text, the queue's own limit.
func readSysVMessages(r io.Reader, n int, limit uint64) ([]sysvMessage, error) {
	var msgs []sysvMessage
	var total uint64
	hdr := make([]byte, 12)
	for i := range n {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		m := sysvMessage{mtype: int64(binary.LittleEndian.Uint64(hdr))}
		size := uint64(binary.LittleEndian.Uint32(hdr[8:]))
		if m.mtype <= 0 {
			return nil, fmt.Errorf("message %d: type %d, want a positive one", i, m.mtype)
		}
		if total += size; total > limit {
			return nil, fmt.Errorf("message %d: the messages hold more than the queue's %d bytes", i, limit)
		}
		// Grown as the bytes come: the sizes are the image's word.
		var text bytes.Buffer
		if _, err := io.CopyN(&text, r, int64(size)); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		m.text = text.Bytes()
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// withNextID makes an object with id (sys.WithNextID) and checks that it
// got it.
func withNextID(name string, id int, make func() (int, error)) error {
	got, err := sys.WithNextID(name, id, make)
	if err != nil {
		return err
	}
	if got != id {
		return fmt.Errorf("made again as %d: its id is taken", got)
	}
	return nil
}

func restoreSysVShm(c *RestoreContext, n *Restored, rec *ckpt.Record) error {
	var seg ckpt.SysVSegment
	if err := rec.Decode(&seg); err != nil {
		return err
	}
	if err := n.Do(func() error { return files.MakeSysVShm(&seg.SysVShm, seg.Size, rec.Payload()) }); err != nil {
		return fmt.Errorf("System V shared memory segment %d: %w", seg.ID, err)
	}
	if c.Files.SysVShm == nil {
		c.Files.SysVShm = map[ckpt.Objref]*files.RestoredSysVShm{}
	}
	c.Files.SysVShm[rec.Objref] = &files.RestoredSysVShm{ID: seg.ID, Size: uint64(seg.Size), Remove: seg.Removed}
	return nil
}

func restoreSysVSem(_ *RestoreContext, n *Restored, rec *ckpt.Record) error {
	var set ckpt.SysVSemSet
	if err := rec.Decode(&set); err != nil {
		return err
	}
	err := n.Do(func() error {
		var id int
		err := withNextID("sem_next_id", set.ID, func() (int, error) {
			var err error
			id, err = sys.Semget(int(set.Key), len(set.Values), unix.IPC_CREAT|unix.IPC_EXCL|int(set.Mode&0o777))
			return id, err
		})
		if err != nil {
			return err
		}
		return errors.Join(sys.SemSetAll(id, set.Values), sys.SemSetPerm(id, set.UID, set.GID, set.Mode))
	})
	if err != nil {
		return fmt.Errorf("System V semaphore set %d: %w", set.ID, err)
	}
	return nil
}

func restoreSysVMsg(_ *RestoreContext, n *Restored, rec *ckpt.Record) error {
	var q ckpt.SysVMsgQueue
	if err := rec.Decode(&q); err != nil {
		return err
	}
	msgs, err := readSysVMessages(rec.Payload(), q.Messages, q.Qbytes)
	if err != nil {
		return fmt.Errorf("System V message queue %d: %w", q.ID, err)
	}
	err = n.Do(func() error {
		var id int
		err := withNextID("msg_next_id", q.ID, func() (int, error) {
			var err error
			id, err = sys.Msgget(int(q.Key), unix.IPC_CREAT|unix.IPC_EXCL|int(q.Mode&0o777))
			return id, err
		})
		if err != nil {
			return err
		}
		if err := sys.MsgSetPerm(id, q.UID, q.GID, q.Mode, q.Qbytes); err != nil {
			return err
		}
		for i, m := range msgs {
			if err := sys.Msgsnd(id, m.mtype, m.text); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("System V message queue %d: %w", q.ID, err)
	}
	return nil
}

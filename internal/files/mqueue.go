package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A POSIX message queue (mq_open) is an object of the IPC namespace, named
// or unlinked, with its messages, attributes and at most one process
// registered for notification (mq_notify); its descriptors are files of the
// mqueue filesystem. The queue is a record of its own that the descriptions
// depend on. Its messages cannot be read without taking them, so the
// checkpoint takes them all, highest priority first as mq_receive gives
// them, and sends them back in that order at once: the queue is as it was
// for a process that runs on. Sending into an empty queue would fire a
// notification, so a queue with both messages and a registration is
// refused by name.
//
// At restart a named queue that still exists with the same inode is the
// same queue (it outlives the processes that open it, as a file does) and
// is opened as it is; one that is gone is made again, with its attributes,
// owner and messages; one replaced by another of that name is an error.
// An unlinked queue is made under a temporary name, unlinked once every
// file is open.
var mqueueKind = &Kind{
	Files:   []string{ckpt.FileMQueue},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return isMQueue(fd) },
	Dump:    dumpMQueueFd,
	Restore: restoreMQueueFd,
	Objects: map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error{ckpt.TypeMQueue: restoreMQueue},
}

// mqueueMagic is the mqueue filesystem's f_type.
const mqueueMagic = 0x19800202

// isMQueue says whether fd is a message queue descriptor: a file at the
// root of an mqueue filesystem ("/NAME" as /proc shows it).
func isMQueue(fd *Fd) bool {
	if fd.Link.Kind != procfs.FdFile || fileType(&fd.Stat) != unix.S_IFREG || strings.Count(fd.Link.Path, "/") != 1 {
		return false
	}
	var st unix.Statfs_t
	return unix.Fstatfs(int(fd.Copy.Fd()), &st) == nil && st.Type == mqueueMagic
}

// mqAttr is struct mq_attr.
type mqAttr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
	_                               [4]int64
}

func mqGetAttr(fd int) (mqAttr, error) {
	var a mqAttr
	if _, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a))); e != 0 {
		return a, os.NewSyscallError("mq_getsetattr", e)
	}
	return a, nil
}

// mqMessage is one queued message.
type mqMessage struct {
	prio uint32
	data []byte
}

// mqReceive takes the next message from a non-blocking descriptor; ok is
// false when the queue is empty.
func mqReceive(fd int, buf []byte) (msg mqMessage, ok bool, err error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&msg.prio)), 0, 0)
		switch e {
		case 0:
			msg.data = append([]byte(nil), buf[:n]...)
			return msg, true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return msg, false, nil
		}
		return msg, false, os.NewSyscallError("mq_timedreceive", e)
	}
}

func mqSend(fd int, m mqMessage) error {
	var p unsafe.Pointer
	if len(m.data) > 0 {
		p = unsafe.Pointer(&m.data[0])
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(m.data)), uintptr(m.prio), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return os.NewSyscallError("mq_timedsend", e)
		}
		return nil
	}
}

// mqStatus is what reading a queue descriptor says ("QSIZE:... NOTIFY:...
// SIGNO:... NOTIFY_PID:...").
type mqStatus struct {
	notify, signo, notifyPid int
}

// parseMQStatus parses a queue descriptor's status line.
func parseMQStatus(s string) (mqStatus, error) {
	var st mqStatus
	fields := strings.Fields(s)
	seen := 0
	for _, f := range fields {
		key, val, ok := strings.Cut(f, ":")
		if !ok {
			return st, fmt.Errorf("message queue status %q: field %q has no value", s, f)
		}
		n, err := strconv.Atoi(val)
		if err != nil {
			return st, fmt.Errorf("message queue status %q: %s: %w", s, key, err)
		}
		switch key {
		case "NOTIFY":
			st.notify, seen = n, seen|1
		case "SIGNO":
			st.signo, seen = n, seen|2
		case "NOTIFY_PID":
			st.notifyPid, seen = n, seen|4
		}
	}
	if seen != 7 {
		return st, fmt.Errorf("message queue status %q: NOTIFY, SIGNO or NOTIFY_PID missing", s)
	}
	return st, nil
}

func dumpMQueueFd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	obj, ok := c.mqueues[fd.Stat.Ino]
	if !ok {
		var err error
		if obj, err = dumpMQueue(c, fd); err != nil {
			return 0, err
		}
		if c.mqueues == nil {
			c.mqueues = map[uint64]ckpt.Objref{}
		}
		c.mqueues[fd.Stat.Ino] = obj
	}
	f := ckpt.File{Kind: ckpt.FileMQueue, Path: fd.Link.Path, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, []ckpt.Objref{obj}, &f)
}

// dumpMQueue writes the queue's record: its messages are taken through a
// description of crsub's own and sent back in order.
func dumpMQueue(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	what := "message queue " + fd.Link.Path
	own, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd.Copy.Fd()), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, os.NewSyscallError("open", err))
	}
	defer unix.Close(own)
	attr, err := mqGetAttr(own)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	status := make([]byte, 128)
	n, err := unix.Pread(own, status, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: reading its status: %w", what, os.NewSyscallError("pread", err))
	}
	st, err := parseMQStatus(string(status[:n]))
	if err != nil {
		return 0, err
	}
	q := ckpt.MQueue{Inode: fd.Stat.Ino, Mode: fd.Stat.Mode & 0o7777, UID: fd.Stat.Uid, GID: fd.Stat.Gid, MaxMsg: attr.MaxMsg, MsgSize: attr.MsgSize}
	if !fd.Link.Deleted {
		q.Name = strings.TrimPrefix(fd.Link.Path, "/")
	}
	if st.notifyPid != 0 {
		switch st.notify {
		case 0: // SIGEV_SIGNAL
			q.NotifyPid, q.NotifySignal = st.notifyPid, st.signo
		case 1: // SIGEV_NONE
			q.NotifyPid, q.NotifyNone = st.notifyPid, true
		default:
			return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("%s with a SIGEV_THREAD notification (a netlink socket)", what)}
		}
		if attr.CurMsgs > 0 {
			return 0, &UnsupportedError{Fd: fd.Num, What: fmt.Sprintf("%s with %d message(s) queued and a notification registered", what, attr.CurMsgs)}
		}
	}
	var msgs []mqMessage
	var size int64
	buf := make([]byte, max(attr.MsgSize, 1))
	for {
		m, ok, err := mqReceive(own, buf)
		if err != nil {
			err = fmt.Errorf("%s: taking message %d: %w", what, len(msgs)+1, err)
		}
		if err != nil || !ok {
			// Whatever was taken goes back, in order, before anything
			// else is said.
			for i, m := range msgs {
				if serr := mqSend(own, m); serr != nil && err == nil {
					err = fmt.Errorf("%s: putting message %d of %d back: %w", what, i+1, len(msgs), serr)
				}
			}
			if err != nil {
				return 0, err
			}
			break
		}
		msgs = append(msgs, m)
		size += 8 + int64(len(m.data))
	}
	q.Messages = len(msgs)
	ref := c.W.NewObjref()
	return ref, c.W.WriteWithPayload(ckpt.TypeMQueue, ref, nil, &q, size, func(w io.Writer) error {
		hdr := make([]byte, 8)
		for _, m := range msgs {
			binary.LittleEndian.PutUint32(hdr, m.prio)
			binary.LittleEndian.PutUint32(hdr[4:], uint32(len(m.data)))
			if _, err := w.Write(hdr); err != nil {
				return err
			}
			if _, err := w.Write(m.data); err != nil {
				return err
			}
		}
		return nil
	})
}

// restoredMQueue is a queue made or found at restart: crsub's own
// description of it, and the temporary name of an unlinked one.
type restoredMQueue struct {
	q        ckpt.MQueue
	own      *os.File
	tempName string
	made     bool // made again by this restart, not found
	// in runs code in the IPC namespace the queue is in.
	in func(fn func() error) error
}

// unlink removes name in the queue's IPC namespace.
func (rq *restoredMQueue) unlink(name string) error {
	return rq.in(func() error { return mqUnlink(name) })
}

// mqOpen runs mq_open in crsub.
func mqOpen(name string, flags int, mode uint32, attr *mqAttr) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	for {
		fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode), uintptr(unsafe.Pointer(attr)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, os.NewSyscallError("mq_open", e)
		}
		return int(fd), nil
	}
}

func mqUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return os.NewSyscallError("mq_unlink", e)
	}
	return nil
}

// restoreMQueue finds the queue the image names, or makes it again with
// its messages.
func restoreMQueue(c *RestoreContext, t Target, rec *ckpt.Record) (err error) {
	var q ckpt.MQueue
	if err := rec.Decode(&q); err != nil {
		return err
	}
	what := "message queue /" + q.Name
	if q.Name == "" {
		what = fmt.Sprintf("unlinked message queue (inode %d)", q.Inode)
	}
	rq := &restoredMQueue{q: q, in: c.inIPCNamespace(t)}
	if q.Name != "" {
		var fd int
		err := rq.in(func() (err error) {
			fd, err = mqOpen(q.Name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
			return err
		})
		switch {
		case err == nil:
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Ino != q.Inode {
				unix.Close(fd)
				return fmt.Errorf("%s was replaced since the checkpoint (inode %d, was %d)", what, st.Ino, q.Inode)
			}
			// The queue outlived its processes: its messages are its own.
			rq.own = os.NewFile(uintptr(fd), what)
			c.addMQueue(rec.Objref, rq)
			return nil
		case !errors.Is(err, unix.ENOENT):
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	name := q.Name
	if name == "" {
		name = fmt.Sprintf("crsub-unlinked-%d-%d", q.Inode, os.Getpid())
		rq.tempName = name
	}
	attr := mqAttr{MaxMsg: q.MaxMsg, MsgSize: q.MsgSize}
	var fd int
	err = rq.in(func() (err error) {
		fd, err = mqOpen(name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_CREAT|unix.O_EXCL, q.Mode&0o777, &attr)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: making it again (maxmsg %d, msgsize %d): %w", what, q.MaxMsg, q.MsgSize, err)
	}
	rq.own, rq.made = os.NewFile(uintptr(fd), what), true
	defer func() {
		if err != nil {
			rq.own.Close()
			_ = rq.unlink(name)
		}
	}()
	if err := unix.Fchmod(fd, q.Mode&0o7777); err != nil {
		return fmt.Errorf("%s: %w", what, os.NewSyscallError("fchmod", err))
	}
	if err := unix.Fchown(fd, int(q.UID), int(q.GID)); err != nil {
		return fmt.Errorf("%s: %w", what, os.NewSyscallError("fchown", err))
	}
	payload := rec.Payload()
	hdr := make([]byte, 8)
	for i := 0; i < q.Messages; i++ {
		if _, err := io.ReadFull(payload, hdr); err != nil {
			return fmt.Errorf("%s: message %d: %w", what, i+1, err)
		}
		n := binary.LittleEndian.Uint32(hdr[4:])
		if int64(n) > q.MsgSize {
			return fmt.Errorf("%s: message %d holds %d bytes, more than its %d", what, i+1, n, q.MsgSize)
		}
		m := mqMessage{prio: binary.LittleEndian.Uint32(hdr), data: make([]byte, n)}
		if _, err := io.ReadFull(payload, m.data); err != nil {
			return fmt.Errorf("%s: message %d: %w", what, i+1, err)
		}
		if err := mqSend(fd, m); err != nil {
			return fmt.Errorf("%s: message %d: %w", what, i+1, err)
		}
	}
	c.addMQueue(rec.Objref, rq)
	return nil
}

func (c *RestoreContext) addMQueue(ref ckpt.Objref, rq *restoredMQueue) {
	if c.mqueues == nil {
		c.mqueues = map[ckpt.Objref]*restoredMQueue{}
	}
	c.mqueues[ref] = rq
}

// restoreMQueueFd opens a description of the queue the record depends on
// with the image's flags, through crsub's own, and hands it to t; the
// process registered for notification registers again.
func restoreMQueueFd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	var rq *restoredMQueue
	for _, d := range rec.Deps {
		if q, ok := c.mqueues[d]; ok {
			rq = q
		}
	}
	if rq == nil {
		return -1, fmt.Errorf("message queue %s: its queue record is missing", f.Path)
	}
	if c.Take == nil {
		return -1, errors.New("the driver cannot hand a message queue over")
	}
	local, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", rq.own.Fd()), reopenFlags(f.Flags)|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("message queue %s: %w", f.Path, os.NewSyscallError("open", err))
	}
	defer unix.Close(local)
	fd, err := c.Take(local, t)
	if err != nil {
		return -1, fmt.Errorf("message queue %s: %w", f.Path, err)
	}
	if q := &rq.q; q.NotifyPid != 0 && q.NotifyPid == t.Pid() {
		sev := make([]byte, 64) // struct sigevent: value, signo, notify, ...
		binary.LittleEndian.PutUint32(sev[8:], uint32(q.NotifySignal))
		if q.NotifyNone {
			binary.LittleEndian.PutUint32(sev[12:], 1) // SIGEV_NONE
		}
		addr, err := t.Scratch(sev)
		if err == nil {
			_, err = t.Syscall(unix.SYS_MQ_NOTIFY, uint64(fd), addr)
		}
		if err != nil {
			_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
			return -1, fmt.Errorf("message queue %s: registering for notification again: %w", f.Path, err)
		}
		q.NotifyPid = 0 // once
	}
	return fd, nil
}

// Abandon undoes what a restart that failed made outside its processes
// (message queues made again); the driver calls it before Close.
func (c *RestoreContext) Abandon() {
	for _, rq := range c.mqueues {
		if rq.made && rq.tempName == "" {
			_ = rq.unlink(rq.q.Name)
		}
	}
}

// closeMQueues lets go of crsub's descriptions of the queues and unlinks
// the temporary names of unlinked ones.
func (c *RestoreContext) closeMQueues() {
	for ref, rq := range c.mqueues {
		rq.own.Close()
		if rq.tempName != "" {
			_ = rq.unlink(rq.tempName)
		}
		delete(c.mqueues, ref)
	}
}

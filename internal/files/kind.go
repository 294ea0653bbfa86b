package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/fsjournal"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// Fd is what a kind's checkpoint side learns about one fd of the target.
type Fd struct {
	Pid     int
	Num     int
	Link    procfs.FdLink
	Info    procfs.FdInfo
	Stat    unix.Stat_t // of the open file, through Copy
	Cloexec bool
	// Copy is a duplicate of the target's fd in this process (pidfd_getfd),
	// owned by the checkpoint driver.
	Copy *os.File
	// Socket is set for sockets: what kinds claim them by.
	Socket *SocketInfo
}

// DumpContext is the state a checkpoint shares across the fds of the
// processes it dumps.
type DumpContext struct {
	W   *ckpt.Writer
	Log *slog.Logger
	// Pid is the process whose fd table is being dumped: what the records
	// written for files no fd holds (carried by a queued message) belong to.
	Pid int
	// Pipes maps a pipe's inode to its objref once its record is written.
	Pipes map[uint64]ckpt.Objref
	// PipeEnds counts, per pipe inode, the read and write ends held by
	// the checkpointed processes: a pipe with an end outside them is
	// external.
	PipeEnds map[uint64]*PipeEnds
	// fifos maps a FIFO to its object record, once written, and ghosts an
	// unlinked file to its ghost record.
	fifos  map[inodeKey]ckpt.Objref
	ghosts map[inodeKey]ckpt.Objref
	// Sockets maps every socket inode held in the checkpointed processes
	// to one fd holding it (filled before anything is dumped), and Pairs a
	// unix pair (by its lower inode) to its record, once written.
	Sockets map[uint64]*Fd
	Pairs   map[uint64]ckpt.Objref
	// Inflight maps the client end of each connection waiting in the
	// accept queue of a listener of the tree to that listener (filled by
	// CheckAcceptQueue before anything is dumped), and ahead the sockets
	// whose file records were written before their fd came (a listener
	// its waiting clients connect to) to those records.
	Inflight map[uint64]*Inflight
	ahead    map[uint64]ckpt.Objref
	// passed holds, by unix socket inode, the queues peeked before
	// anything was dumped because their messages carry files, and
	// passedFds those files (PeekPassed).
	passed    map[uint64][]queuedMessage
	passedFds []*Fd
	// DumpFd dumps the open file description of an fd that is not in the
	// fd table (a file a queued message carries), as the driver dumps the
	// fd table's: once per description, shared with the fds of the tree
	// on it. It returns its file record.
	DumpFd func(fd *Fd) (ckpt.Objref, error)
	// Memfds maps a memfd's inode (or an unlinked file's a mapping
	// holds) to its object record, once written (by its first fd or
	// mapping).
	Memfds map[inodeKey]ckpt.Objref
	// mqueues maps a message queue's inode to its record, once written.
	mqueues map[uint64]ckpt.Objref
	// PtyMasters maps the number of every pty whose master the
	// checkpointed processes hold to one fd on that master (filled before
	// anything is dumped), and Ptys a pty number to its object record,
	// once written.
	PtyMasters map[int]*Fd
	Ptys       map[int]ckpt.Objref
	// PtySlaves maps a pty number to one fd of the checkpointed
	// processes on its slave (filled with PtyMasters).
	PtySlaves map[int]*Fd
	// OnRelease holds what kinds must undo when the checkpointed processes
	// run on (the checkpoint failed, or leaves them running): the driver
	// calls each before letting them go. (When they are killed instead,
	// closing the fd copies is all that is left to do.)
	OnRelease []func()
	// Dumped lists the fds whose file records are written, with their
	// objrefs: what records written after the fd table refer to.
	Dumped []Dumped
	// after holds what kinds write once the whole fd table is written.
	after []func(*DumpContext) error
	// diags are the sock_diag connections, by the inode of the network
	// namespace each was made in (socket_netns.go), until Close.
	diags map[uint64]*sys.SockDiag
	// MountNamespaceOf, if set, is the inode of the mount namespace of
	// the image that mount mntID is in, when that is not process pid's:
	// a file opened there (ckpt.File.MountNamespace).
	MountNamespaceOf func(pid, mntID int) (uint64, bool)
	// MountsOf, if set, lists the mounts of filesystem dev in the mount
	// namespaces of the image, as process pid's namespace is 0.
	MountsOf func(pid int, dev uint64) []MountView
	// Caller, if not 0, is the inode of the checkpointing program's end
	// of a socket the tree asked it to checkpoint through (a self-dump):
	// the tree's end is recorded as one whose peer is gone, CallerReply
	// queued on it (socket_unix_caller.go).
	Caller      uint64
	CallerReply []byte
}

// MountView is a mount in a mount namespace of the image: the namespace's
// inode (0 for the process asking), a process in it, its mount point, and
// the directory of its filesystem it shows.
type MountView struct {
	Namespace uint64
	Pid       int
	Path      string
	Root      string
}

// Dumped is an fd whose file record is in the image.
type Dumped struct {
	Fd  *Fd
	Ref ckpt.Objref
}

// WriteFile writes fd's file record, adding what any kind of file may
// have: its SIGIO owner and its locks.
func (c *DumpContext) WriteFile(fd *Fd, ref ckpt.Objref, deps []ckpt.Objref, f *ckpt.File) error {
	return c.WriteFileWithPayload(fd, ref, deps, f, 0, nil)
}

// WriteFileWithPayload is WriteFile for a record carrying contents.
func (c *DumpContext) WriteFileWithPayload(fd *Fd, ref ckpt.Objref, deps []ckpt.Objref, f *ckpt.File, n int64, fill func(io.Writer) error) error {
	if err := FileExtras(fd, f); err != nil {
		return err
	}
	if f.Socket != nil && f.Socket.NetNS == 0 && fd.Socket != nil {
		f.Socket.NetNS = fd.Socket.NetNS
	}
	return c.W.WriteWithPayload(ckpt.TypeFile, ref, deps, f, n, fill)
}

// Finish writes the records that come after the fd table (epoll watches).
func (c *DumpContext) Finish() error {
	for _, f := range c.after {
		if err := f(c); err != nil {
			return err
		}
	}
	c.after = nil
	return nil
}

// PipeEnds counts the ends of one pipe seen in the checkpointed processes.
type PipeEnds struct{ Read, Write int }

// Target is the restart driver's handle on a process being rebuilt: the
// operations a kind needs to recreate its file there.
type Target interface {
	Pid() int
	// Syscall runs a system call inside the target.
	Syscall(nr int, args ...uint64) (uint64, error)
	// Open opens path inside the target and returns the target's fd.
	Open(path string, flags int, mode uint32) (int, error)
	// Pipe2 creates a pipe inside the target.
	Pipe2(flags int) (read, write int, err error)
	// Copy duplicates a target fd into this process.
	Copy(fd int) (*os.File, error)
	// Hold tells the driver that the target fd *fd keeps an object that
	// is not in place yet: if the driver needs that number for another
	// fd, it moves the object elsewhere and updates *fd. Unhold ends it.
	Hold(fd *int)
	Unhold(fd *int)
	// FdOf returns the fd number that holds a file objref once placed.
	FdOf(ref ckpt.Objref) (int, bool)
	// Scratch copies b into memory of the target and returns its address;
	// it stays valid until the next call.
	Scratch(b []byte) (uint64, error)
	// ReadScratch reads back the first n bytes of that memory, where a
	// system call left its results.
	ReadScratch(n int) ([]byte, error)
	// Warn reports something the user should know that does not stop the
	// restart.
	Warn(msg string, args ...any)
}

// scratchInt puts the C int v in t's scratch memory and returns its
// address, for a call that takes a pointer to an int.
func scratchInt(t Target, v int) (uint64, error) {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(int32(v)))
	return t.Scratch(b)
}

// IoctlSetInt runs ioctl(fd, req, &v) inside t.
func IoctlSetInt(t Target, fd int, req uint, v int) error {
	addr, err := scratchInt(t, v)
	if err != nil {
		return err
	}
	_, err = t.Syscall(unix.SYS_IOCTL, uint64(fd), uint64(req), addr)
	return err
}

// RestoreContext is the state a restart shares across files.
type RestoreContext struct {
	// Pipes maps a pipe objref to the ends created for it in the target.
	Pipes map[ckpt.Objref]*RestoredPipe
	// Memfds maps a memfd object to where it was recreated.
	Memfds map[ckpt.Objref]*RestoredMemfd
	// SysVShm maps a System V segment object to the segment restored.
	SysVShm map[ckpt.Objref]*RestoredSysVShm
	// Transfer gives target `to` its own copy of fd of process fromPid, one
	// more fd on the same open file description.
	Transfer func(fromPid, fd int, to Target) (int, error)
	// InTree says whether a pid (as the image knows it) is one of the
	// image's processes, and InnerPid what that pid is inside the
	// restored tree's pid namespace.
	InTree   func(pid int) bool
	InnerPid func(pid int) int
	// Open gives the target an fd on the file of a file record read
	// before (a dependency of the one being restored), restoring it first
	// if no process has yet.
	Open func(ref ckpt.Objref, t Target) (int, error)
	// HostPid is what an image pid of the tree is as crsub sees it (in
	// /proc): itself, unless the tree was restored in a new pid
	// namespace. Valid once every task exists (RestoreContext.Later).
	HostPid func(pid int) int
	// TCPClose restores TCP connections closed (restart.Options.TCPClose).
	TCPClose bool
	// Take makes the target take a copy of one of crsub's own fds (any
	// kind of file) and returns the target's fd.
	Take func(local int, to Target) (int, error)
	// Journal lists the names made in the file system for the length of
	// the restart (ghosts, removed directories, names linked for a
	// moment), so that the next restart removes those a killed crsub
	// left; nil lists nothing. Close closes it.
	Journal *fsjournal.Journal
	// Log takes what a restart should know of and goes on after; nil
	// drops it.
	Log *slog.Logger
	// deadPids maps the inode of a pidfd of a dead process to the
	// throwaway process its pidfds are opened on, until Close.
	deadPids map[uint64]int
	// standIns maps a process that had exited whose /proc directory a
	// process of the tree is in to the process standing for it
	// (StandIn), until Close.
	standIns map[standInKey]standIn
	// PtyPaths maps a pty's number in the image to the slave path of the
	// pair made for it.
	PtyPaths map[int]string
	// Later holds, by file objref, files that can only be opened once
	// every task exists and every session has its terminal again (a pidfd
	// of a child not forked yet, /dev/tty): their fds hold /dev/null until
	// then, and the driver puts what the function opens in t in their
	// place.
	Later map[ckpt.Objref]func(t Target) (int, error)
	// Settle holds, by file objref, what is set on a restored file once
	// every file of every task is restored: a state that would have kept
	// its siblings from being restored (a TCP connection's SO_REUSEADDR
	// off, which a listener on its port binding after it needs on). The
	// driver calls each once, with the fd of the file in the first task
	// that holds it.
	Settle map[ckpt.Objref]func(t Target, fd int) error
	// packetRings are the mappings of packet sockets' rings waiting for
	// their socket (ReservePacketRing).
	packetRings []pendingRing
	// names are the unix sockets restored bound to a name, by name: the
	// senders of the datagrams queued for others.
	names map[string]namedSocket
	// unixFiles are O_PATH fds on the files of the unix sockets restored
	// bound to a path, by the image socket's inode, held until Close: the
	// tree's sockets connect to them through these (unixAddr).
	unixFiles map[uint64]*sys.FD
	// ghosts are the unlinked files made again, dirs the removed
	// directories, and fifos the FIFOs refilled, held until Close.
	ghosts map[ckpt.Objref]*os.File
	// ghostNames are the names of the ghosts made again that keep them
	// until Close (symbolic links).
	ghostNames map[ckpt.Objref]string
	dirs       map[inodeKey]removedDir
	fifos      map[ckpt.Objref]*os.File
	// mqueues are the message queues found or made again, held until
	// Close; Abandon removes the ones made for a restart that failed.
	mqueues map[ckpt.Objref]*restoredMQueue
	// InIPCNamespace returns how to run code in the IPC namespace of
	// target t, where its POSIX message queues are, when it is not
	// crsub's; nil (or a nil InIPCNamespace) runs it in crsub's.
	InIPCNamespace func(t Target) func(fn func() error) error
	// HostPath, if set, says how crsub reaches path as target t names it
	// (through its root, when it is in a mount namespace of the image),
	// and NewDevice what a filesystem t's mount namespace made anew (by
	// its device number at checkpoint) is now: its files' inodes are new.
	HostPath  func(t Target, path string) string
	NewDevice func(t Target, dev uint64) (uint64, bool)
	// PtyMaster, if set, gives the master of pty index made already in
	// t's mount namespace, with it (a mount of its slave needed it): the
	// restart of that pty takes it, and closes crsub's; nil if none was.
	PtyMaster func(t Target, index int) *os.File
	// InMountNamespace, if set, says how crsub reaches path in the mount
	// namespace made again of the image's mount namespace inode (a
	// ckpt.File's MountNamespace); ok is false for none.
	InMountNamespace func(inode uint64, path string) (host string, ok bool)
	// MovedDevice is what a filesystem from outside t's mount namespace,
	// mounted again since the checkpoint, is now: its inodes are the same.
	MovedDevice func(t Target, dev uint64) (uint64, bool)
	// ProcPidNamespace, if set, says whether filesystem dev (at
	// checkpoint) is a proc that target t's mount namespace made anew,
	// and gives the pid namespace it shows (nil: crsub's), made again by
	// the time t's files are restored.
	ProcPidNamespace func(t Target, dev uint64) (pidns *os.File, ok bool)
	// NewTerminal, if set, is handed the master of a new pty made for
	// each external pty slave of the image (terminal.go), which it must
	// not keep open past its return; newTerminals are the slaves made.
	NewTerminal  func(master *os.File) error
	newTerminals map[terminalKey]bool
	// heldNamespaces are, by inode, the network namespaces other than
	// crsub's where TCP connections are held still while they are
	// restored (socket_tcp_netns.go), until every file is.
	heldNamespaces map[uint64]*heldNamespace
}

// reopen gives t an fd on the file crsub's fd local is open on, opened
// again with flags (a link followed even to a symbolic link): by t through
// crsub's /proc, or, for a t in a mount namespace of its own, whose /proc
// is another, by crsub, then handed over.
func (c *RestoreContext) reopen(t Target, local int, flags int) (int, error) {
	flags &^= unix.O_NOFOLLOW
	if c.hostPath(t, "/") == "/" || c.Take == nil {
		return t.Open(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), local), flags, 0)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", local), flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return c.Take(int(f.Fd()), t)
}

// hostPath is path as crsub reaches it for t (HostPath).
func (c *RestoreContext) hostPath(t Target, path string) string {
	if c.HostPath == nil {
		return path
	}
	return c.HostPath(t, path)
}

// pathIn is how crsub reaches path as the image's mount namespace mntns
// shows it (0: as t sees it); false when that namespace is not made again
// here.
func (c *RestoreContext) pathIn(t Target, mntns uint64, path string) (string, bool) {
	if mntns == 0 {
		return c.hostPath(t, path), true
	}
	if c.InMountNamespace == nil {
		return "", false
	}
	return c.InMountNamespace(mntns, path)
}

// procPidNamespace is ProcPidNamespace, false when unset.
func (c *RestoreContext) procPidNamespace(t Target, dev uint64) (*os.File, bool) {
	if c.ProcPidNamespace == nil {
		return nil, false
	}
	return c.ProcPidNamespace(t, dev)
}

// replaced says whether st, the file at a record's path now, is not the
// one id recorded: another inode, or another filesystem than the one it
// was on or was made anew as.
func (c *RestoreContext) replaced(t Target, st *unix.Stat_t, id ckpt.FileIdentity) bool {
	if c.NewDevice != nil {
		if d, ok := c.NewDevice(t, id.Dev); ok {
			return st.Dev != d
		}
	}
	if c.MovedDevice != nil {
		if d, ok := c.MovedDevice(t, id.Dev); ok {
			return st.Ino != id.Inode || st.Dev != d
		}
	}
	return st.Ino != id.Inode || st.Dev != id.Dev
}

// inIPCNamespace runs fn in t's IPC namespace (InIPCNamespace).
func (c *RestoreContext) inIPCNamespace(t Target) func(fn func() error) error {
	if c.InIPCNamespace != nil {
		if in := c.InIPCNamespace(t); in != nil {
			return in
		}
	}
	return func(fn func() error) error { return fn() }
}

// settle registers what to set on a restored file at the end
// (RestoreContext.Settle), after what was registered for it before.
func (c *RestoreContext) settle(ref ckpt.Objref, f func(t Target, fd int) error) {
	if c.Settle == nil {
		c.Settle = map[ckpt.Objref]func(Target, int) error{}
	}
	if before := c.Settle[ref]; before != nil {
		c.Settle[ref] = func(t Target, fd int) error {
			if err := before(t, fd); err != nil {
				return err
			}
			return f(t, fd)
		}
		return
	}
	c.Settle[ref] = f
}

// closePipes lets go of the pipes' anchors: an fd crsub keeps on a pipe
// would keep its readers from seeing the end of it.
func (c *RestoreContext) closePipes() {
	for _, p := range c.Pipes {
		if p.anchor != nil {
			p.anchor.Close()
			p.anchor = nil
		}
	}
}

// openLater gives a file restored later (RestoreContext.Later) its
// placeholder fd.
func openLater(c *RestoreContext, t Target, ref ckpt.Objref, open func(Target) (int, error)) (int, error) {
	fd, err := t.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("a placeholder until every task exists: %w", err)
	}
	c.Later[ref] = open
	return fd, nil
}

// RestoredPipe is a pipe recreated inside a target.
type RestoredPipe struct {
	Pid         int
	Read, Write int // target fds, or -1 once handed out
	// described says which ends (read, write) a file record took: a
	// second open file description of an end is a new open of the pipe,
	// through anchor, crsub's own fd on it (pipes only).
	described [2]bool
	anchor    *os.File
	// ptsPath is a pty's slave, which a second description opens again.
	ptsPath string
}

// Kind is one kind of file: how to recognise it, dump it and restore it.
type Kind struct {
	// Files are the kinds of file record (ckpt.File.Kind) the kind
	// writes; it restores each of them.
	Files []string
	// Claims reports whether the kind dumps fd. It may look at what the
	// checkpoint learned of every fd before any was dumped (c.PtyMasters,
	// c.Sockets).
	Claims func(c *DumpContext, fd *Fd) bool
	// Dump writes the records that define fd's file (and any object it
	// needs, first) and returns the file's objref.
	Dump func(c *DumpContext, fd *Fd) (ckpt.Objref, error)
	// Restore recreates the file inside t and returns the target fd that
	// holds it (any number: the driver moves it into place).
	Restore func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error)
	// Objects restore the other records the kind writes, by type: the
	// objects its files depend on (a pipe, a pty, a socket pair, a memfd),
	// written before them, and what follows the fd table (epoll watches).
	// They belong to the process whose records are being read.
	Objects map[ckpt.Type]func(*RestoreContext, Target, *ckpt.Record) error
}

// String names the kind in messages: its first kind of file record.
func (k *Kind) String() string {
	if len(k.Files) == 0 {
		return "unsupported socket"
	}
	return k.Files[0]
}

// Kinds lists every supported kind; the first whose Claims matches wins.
//
// Kinds of sockets claim by fd.Socket (family, type, listening); any other
// socket falls through to otherSocketKind, which fails by name. The pty
// kinds come before charDevKind, which claims every other character device.
var Kinds = []*Kind{
	memfdKind,
	mqueueKind,
	regularKind,
	directoryKind,
	symlinkKind,
	ptyKind,
	cttyKind,
	tunKind,
	charDevKind,
	pipeKind,
	fifoKind,
	epollKind,
	inetListenKind,
	udpKind,
	rawKind,
	tcpClosedKind,
	inflightKind,
	tcpEstablishedKind,
	unixListenKind,
	unixKind,
	eventfdKind,
	timerfdKind,
	signalfdKind,
	inotifyKind,
	fanotifyKind,
	netlinkKind,
	packetKind,
	pidfdKind,
	namespaceKind,
	otherSocketKind,
}

// KindFor returns the kind that dumps fd.
func KindFor(c *DumpContext, fd *Fd) (*Kind, error) {
	for _, k := range Kinds {
		if k.Claims(c, fd) {
			return k, nil
		}
	}
	return nil, &UnsupportedError{Fd: fd.Num, What: describe(fd)}
}

// ForFile returns the kind that restores file records of a kind.
func ForFile(kind string) (*Kind, error) {
	for _, k := range Kinds {
		if slices.Contains(k.Files, kind) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no restorer for file kind %q", kind)
}

// ForObject returns the restorer of an object record type a kind writes
// beside its file records, if any kind writes it.
func ForObject(typ ckpt.Type) (func(*RestoreContext, Target, *ckpt.Record) error, bool) {
	for _, k := range Kinds {
		if restore, ok := k.Objects[typ]; ok {
			return restore, true
		}
	}
	return nil, false
}

// UnsupportedError reports an fd kind crsub cannot checkpoint yet: a
// checkpoint fails rather than silently dropping it.
type UnsupportedError struct {
	Fd   int
	What string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s: this kind of file is not supported yet", e.What)
}

// ErrExternal is wrapped by restart errors about an external file that has
// no substitute.
var ErrExternal = errors.New("external file needs a substitute")

func describe(fd *Fd) string {
	switch fd.Link.Kind {
	case procfs.FdFile:
		return fmt.Sprintf("%s, mode %#o", fd.Link.Path, fd.Stat.Mode&unix.S_IFMT)
	case procfs.FdAnonInode:
		return "anon_inode:" + fd.Link.Path
	}
	return fd.Link.Kind.String()
}

func fileType(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

func identityOf(path string, st *unix.Stat_t) ckpt.FileIdentity {
	return ckpt.FileIdentity{Path: path, Dev: st.Dev, Inode: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano()}
}

// reopenFlags strips what must not happen again when a file is reopened:
// creating it (O_TMPFILE too, which a file made so keeps in its flags).
func reopenFlags(flags int) int {
	return flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_CLOEXEC | unix.O_TMPFILE)
}

// seek sets a target fd's offset.
func seek(t Target, fd int, pos int64) error {
	if pos == 0 {
		return nil
	}
	if _, err := t.Syscall(unix.SYS_LSEEK, uint64(fd), uint64(pos), unix.SEEK_SET); err != nil {
		return fmt.Errorf("lseek to %d: %w", pos, err)
	}
	return nil
}

// setNonblock gives a new pipe end the image's O_NONBLOCK.
func setNonblock(t Target, fd, flags int) error {
	if nb := flags & unix.O_NONBLOCK; nb != 0 {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFL, uint64(nb)); err != nil {
			return fmt.Errorf("fcntl F_SETFL: %w", err)
		}
	}
	return nil
}

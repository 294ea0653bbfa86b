package ns

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/sys"
)

// Kind is one kind of namespace: how to read it, make it and fill it.
type Kind struct {
	// Name is the kind as /proc/PID/ns/ names it ("uts") and as the image
	// records it (ckpt.Namespace.Kind).
	Name string
	// CloneFlag is the kind's CLONE_NEW* flag, for clone3, unshare and
	// setns.
	CloneFlag uint64
	// Unsupported, if set, says why a process in a namespace of this kind
	// other than crsub's cannot be checkpointed yet: it is refused by name
	// before anything is frozen.
	Unsupported string
	// ForChildren says a process chooses this kind of namespace for its
	// children (/proc/PID/ns/NAME_for_children) rather than for itself: a
	// new one is made by unshare in the parent, before the fork of the
	// first process in it (pid, time).
	ForChildren bool
	// Unshared says a new namespace of the kind is made by unshare in the
	// first task in it, once that task exists, rather than by CloneFlag
	// when it is created: what must be set first (PrepareTask) can only be
	// set on a task.
	Unshared bool
	// OpensWhenEntered says a new namespace of the kind cannot be opened
	// until a task is in it (a pid namespace has no file until its init
	// exists): a restart takes it from the first task in it.
	OpensWhenEntered bool

	// Check, if set, refuses what of the namespace of process pid crsub
	// cannot checkpoint (a mount it cannot make again), by name, before
	// anything is frozen.
	Check func(pid int) error
	// Dump fills n (Kind, Inode and Pid set) with what the namespace holds
	// that its record keeps, read while pid, a process in it, is frozen.
	// Nil: the record keeps nothing but the namespace itself.
	Dump func(c *DumpContext, n *ckpt.Namespace, pid int) error
	// DumpObjects writes the records of what the namespace holds that are
	// too large for its record (each depending on ref), right after the
	// process record of n.Pid, the process a restart makes it with.
	DumpObjects func(c *DumpContext, n *ckpt.Namespace, ref ckpt.Objref) error

	// PrepareTask readies task host, before a new namespace of the kind is
	// made in it by unshare (Unshared kinds).
	PrepareTask func(c *RestoreContext, n *ckpt.Namespace, host int) error
	// PrepareNew sets what must be set on a new namespace before any task
	// enters it; host is the task that made it, for which it is the
	// namespace for its children (ForChildren kinds).
	PrepareNew func(c *RestoreContext, n *ckpt.Namespace, host int) error
	// Restore fills a namespace made again from its record, once the task
	// it was made in exists.
	Restore func(c *RestoreContext, n *Restored) error
	// Objects restore, by type, the records DumpObjects writes, each in
	// the namespace it depends on; for a namespace the caller gave
	// (Restored.Supplied) they check it, fill it or leave it alone, as the
	// kind decides.
	Objects map[ckpt.Type]func(c *RestoreContext, n *Restored, rec *ckpt.Record) error
}

// Kinds lists every kind of namespace, in the order a restart makes them
// in one task.
var Kinds = []*Kind{
	userKind,
	pidKind,
	timeKind,
	cgroupKind,
	utsKind,
	ipcKind,
	netKind,
	mntKind,
}

// KindOf returns the kind named name.
func KindOf(name string) (*Kind, error) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown kind of namespace %q", name)
}

// ForObject returns the restorer of an object record type a kind writes,
// if any kind writes it.
func ForObject(typ ckpt.Type) (func(*RestoreContext, *Restored, *ckpt.Record) error, bool) {
	for _, k := range Kinds {
		if restore, ok := k.Objects[typ]; ok {
			return restore, true
		}
	}
	return nil, false
}

// DumpContext is what a checkpoint shares across the namespaces it dumps.
type DumpContext struct {
	W   *ckpt.Writer
	Log *slog.Logger
	// Networks are the network namespaces the image records, by inode,
	// each with a process in it: a veth between two of them is recorded
	// as such in both.
	Networks map[uint64]int
	// SysVShm maps a System V shared memory segment of a recorded IPC
	// namespace to its record, once written: the mappings of it refer to
	// it.
	SysVShm map[SysVKey]ckpt.Objref
	// Uncover, if set, forks a helper inside frozen process pid, in its
	// namespaces, that makes its mount namespace a private copy of its own
	// and unmounts paths there, in order; it returns the helper's pid and
	// release, which ends the helper. The files of a tmpfs other mounts
	// cover are read in the helper's namespace when crsub's own copy of
	// the namespace cannot unmount them (mnt_covered.go).
	Uncover func(pid int, paths []string) (helper int, release func() error, err error)
	// mountFiles are the filesystems whose files are written (MountFiles),
	// by device number: a filesystem mounted in more than one mount
	// namespace has its files written once, by the first.
	mountFiles map[uint64]bool
}

// SysVKey names a System V object: its IPC namespace (inode) and id.
type SysVKey struct {
	Namespace uint64
	ID        int
}

// RestoreContext is what a restart shares across the namespaces it makes.
type RestoreContext struct {
	Log *slog.Logger
	// Files is the restart's file context: the System V segments made
	// again are attached by the memory areas that map them, as the host's
	// are (Files.SysVShm).
	Files *files.RestoreContext
	// MoveToCgroups moves process host into cgroups, making the missing
	// ones (a failed restart removes them).
	MoveToCgroups func(host int, cgroups []ckpt.Cgroup) error
	// Root is the root filesystem of a mount namespace made again, in
	// place of the image's (its external root), and MountMap moves the
	// image's other external mounts (old path → new).
	Root     string
	MountMap map[string]string
	// pidNamespaces are the pid namespaces made again, by their inode at
	// checkpoint, and deferred the mount namespaces waiting for one of
	// them to mount a proc showing it (mnt.go).
	pidNamespaces map[uint64]*os.File
	deferred      []*mountTree
	// peers are the mounts given their propagation, by peer group, in the
	// mount namespaces made so far (mnt_share.go).
	peers peerGroups
	// made are the filesystems made anew in them, which a mount
	// namespace made later mounts too if it had them.
	made *filesystems
	// Links gives, by name, host links to use for links of the image's
	// network namespace (restart.Options.Links); NetworkAsGiven takes a
	// supplied one that is not empty unchecked (restart.Options).
	Links          map[string]string
	NetworkAsGiven bool
	// PeerWait bounds how long the host name of a veth peer to make again,
	// still taken, is waited for.
	PeerWait time.Duration
	// vethPairs are the veths between two network namespaces the restart
	// makes (net_pairs.go).
	vethPairs *VethPairs

	// undo and release are what OnFailure was given, in the order given,
	// and beforeRun what BeforeRun was.
	undo, release, beforeRun []func() error
}

// BeforeRun registers what is done once nothing of the restart can fail
// any more, before its tasks run (Running): what must not be in their way
// (a lock on their network namespace).
func (c *RestoreContext) BeforeRun(f func() error) {
	c.beforeRun = append(c.beforeRun, f)
}

// Running does what BeforeRun was given.
func (c *RestoreContext) Running() error {
	var errs []error
	for _, f := range c.beforeRun {
		errs = append(errs, f())
	}
	c.beforeRun = nil
	return errors.Join(errs...)
}

// madeFilesystems are the filesystems made anew by the mount namespaces
// of the restart, released when it ends.
func (c *RestoreContext) madeFilesystems() *filesystems {
	if c.made == nil {
		c.made = &filesystems{whole: map[uint64]*sys.FD{}, devs: map[uint64]uint64{}, readOnly: map[uint64]bool{}}
		c.release = append(c.release, func() error { c.made.close(); return nil })
		c.undo = append(c.undo, func() error { c.made.close(); return nil })
	}
	return c.made
}

// OnFailure registers what undoes a step should the restart fail
// (Failed), and what releases its resources otherwise (Close).
func (c *RestoreContext) OnFailure(undo, release func() error) {
	c.undo = append(c.undo, undo)
	c.release = append(c.release, release)
}

// Failed undoes the steps registered, last first; the namespaces must
// still be held.
func (c *RestoreContext) Failed() error {
	var errs []error
	for i := len(c.undo) - 1; i >= 0; i-- {
		errs = append(errs, c.undo[i]())
	}
	c.undo, c.release, c.beforeRun = nil, nil, nil
	return errors.Join(errs...)
}

// Close releases what the steps registered hold, if Failed did not.
func (c *RestoreContext) Close() error {
	var errs []error
	for _, r := range c.release {
		errs = append(errs, r())
	}
	c.undo, c.release = nil, nil
	return errors.Join(errs...)
}

// Restored is a namespace of the image at restart: made again, or
// supplied by the caller. It holds an fd on the namespace until Close.
type Restored struct {
	Ref    ckpt.Objref
	Record ckpt.Namespace
	Kind   *Kind
	// Supplied says the caller gave the namespace: nothing of the image's
	// is restored into it.
	Supplied bool
	// Task is the pid, as crsub sees it, of the task it was made in (0:
	// supplied), for what is set through that task's /proc (a user
	// namespace's maps).
	Task int
	file *os.File
	// mounts is a mount namespace's tree being made (mnt_build.go).
	mounts *mountTree
}

// NewRestored takes f, an fd on the namespace the image's record rec (ref)
// became.
func NewRestored(ref ckpt.Objref, rec ckpt.Namespace, k *Kind, f *os.File, supplied bool) *Restored {
	return &Restored{Ref: ref, Record: rec, Kind: k, file: f, Supplied: supplied}
}

// File is crsub's fd on the namespace, valid until Close.
func (n *Restored) File() *os.File { return n.file }

// Do runs fn on an OS thread of crsub that joined the namespace.
func (n *Restored) Do(fn func() error) error {
	if err := Do(n.file, int(n.Kind.CloneFlag), fn); err != nil {
		return fmt.Errorf("%s namespace %d: %w", n.Kind.Name, n.Record.Inode, err)
	}
	return nil
}

// Close lets go of crsub's fd on the namespace: it lives on in its tasks.
func (n *Restored) Close() error {
	if n.mounts != nil {
		n.mounts.close()
	}
	if n.file == nil {
		return nil
	}
	err := n.file.Close()
	n.file = nil
	return err
}

// String names the namespace in messages.
func (n *Restored) String() string {
	return fmt.Sprintf("%s namespace %d", n.Kind.Name, n.Record.Inode)
}

// Kinds with nothing of their own to dump or fill (but a pid namespace's
// proc, mounted once it is made: mnt.go). A new network namespace
// has a loopback link, down; the links, addresses and routes it held are
// the business of the net kind's Dump, DumpObjects, Restore and Objects
// (net*.go). The pid namespace's pids are the task tree's (ckpt.TreeProcess
// NsPid), given back by clone3's set_tid.
var (
	pidKind = &Kind{Name: ckpt.NamespacePid, CloneFlag: unix.CLONE_NEWPID, ForChildren: true, OpensWhenEntered: true, Restore: mountProcs}
)

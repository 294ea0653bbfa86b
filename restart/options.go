package restart

import (
	"log/slog"
	"os"
	"time"

	"github.com/crsub/crsub/substitute"
)

// Options controls a restart. Start from DefaultOptions.
type Options struct {
	// Log receives progress and warnings; nil means silent.
	Log *slog.Logger
	// Preserve lists fds of the calling process that the restored process
	// keeps at the same numbers, instead of what the image holds there
	// (see package preserve).
	// Fds marked with preserve.Set in the calling process are kept too.
	Preserve []int
	// Substitutes replaces, per fd number of the root process, what the
	// image holds there with a source opened at restart. The source takes
	// the image fd's access mode, O_APPEND, O_NONBLOCK and FD_CLOEXEC
	// unless its spec says otherwise. A substitute for an fd the image
	// does not have is an error.
	Substitutes map[int]substitute.Source
	// ProcessSubstitutes does the same for other processes of the tree:
	// fd numbers by pid (as in the image).
	ProcessSubstitutes map[int]map[int]substitute.Source
	// Parent overrides where the image's parent image is (the header
	// names it); ImageDir is the image's directory, against which a
	// relative parent path is resolved.
	Parent   string
	ImageDir string
	// TCPClose restores every TCP connection of the image closed, as
	// CRIU's --tcp-close: the process finds it ended (reads see its end,
	// writes fail with EPIPE), its unread data gone; its peer's packets
	// are no longer held, and meet a reset.
	TCPClose bool
	// PidNamespace restores the tree into a new pid namespace: the root
	// is pid 1 there, the others keep their pids (or the ones they had in
	// their own namespace, if they were checkpointed inside one). Their
	// pids as crsub sees them are then new.
	PidNamespace bool
	// Namespaces supplies, by kind ("net", "uts", "ipc", "cgroup",
	// "time"), an existing namespace to restore the tree into instead of
	// making the image's namespace of that kind again: the process the
	// image made it with joins it, its descendants are in it as they were
	// in the image's, and nothing the image holds of that namespace is
	// restored into it (a network namespace: see Links). The image must have exactly one namespace of that
	// kind of its own, and the source must be a namespace of that kind;
	// otherwise the restart fails before anything runs. A pid namespace
	// cannot be supplied.
	Namespaces map[string]substitute.Namespace
	// Cgroups says what becomes of the cgroups the image records and
	// whether the tasks join them (default CgroupsCreate).
	Cgroups CgroupMode
	// CgroupRoots puts the recorded cgroups of a hierarchy elsewhere: each
	// of the roots the image records for it (the tasks' cgroups, or the
	// root the checkpoint was given) becomes this cgroup, with what is
	// below it. By hierarchy: a controller or name= of a v1 hierarchy
	// ("cpu", "name=systemd"), "unified" for the v2 one, or "" for every
	// hierarchy not named.
	CgroupRoots map[string]string
	// Root is the root filesystem (a directory) of the image's mount
	// namespace at restart, in place of the external one it had (a
	// container migrated to where its root filesystem is elsewhere).
	// MountMap moves the image's other external mounts, the directories
	// and files bind-mounted into the namespace from outside: old path
	// (as the image has it) → new. A root for an image without a mount
	// namespace of its own, or whose root was made inside it, and a
	// mapping of a path no external mount of the image has, are errors.
	Root     string
	MountMap map[string]string
	// Links gives, by the name of a link of the image's network namespace,
	// a link of crsub's network namespace to use for it instead of making
	// it: moved into the namespace, renamed, and given the image's
	// addresses, routes, MTU and flags (its hardware address stays its
	// own). A link the image cannot make again (a physical device, a veth
	// whose peer was in another namespace) must be given. A name the image
	// lacks, a host link that does not exist, or links given for an image
	// without a network namespace of its own fail the restart before
	// anything runs; a failed restart gives the links back, under their
	// names. With Namespaces["net"], the links are moved into that one.
	//
	// A network namespace supplied in Namespaces["net"] is filled from the
	// image if it is empty (only a loopback link, down, nothing added);
	// otherwise it must hold each link of the image by name, with the
	// image's addresses, and lo up if it was up, or the restart fails
	// saying what differs; nothing of the image's is restored into it then
	// but the links given here.
	Links map[string]string
	// NetworkAsGiven takes a network namespace supplied in
	// Namespaces["net"] that is not empty as it is, unchecked: its
	// configuration is the caller's (a container runtime's, which may
	// give a restored container another address; CRIU's external network
	// namespace).
	NetworkAsGiven bool
	// Progress, if set, is called as the image is read, with the bytes read
	// so far.
	Progress func(done int64)
	// AnyRootPid lets the root of a tree that is the init of a pid
	// namespace of its own take another pid in crsub's namespace when its
	// own is held (the original still frozen: a migration restoring on
	// the same machine before the checkpoint ends), as CRIU gives it one:
	// no process of the tree sees that pid. Process.Pid says which.
	AnyRootPid bool
	// PidWait bounds how long a restart waits for an original pid still
	// held by a zombie that is about to be reaped.
	PidWait time.Duration
	// TasksCreated, if set, runs once every task of the tree exists, all
	// stopped: memory and files are rebuilt (children are forked by their
	// rebuilt parents), but no process, signal, thread or register state
	// is, and nothing has run. An error aborts the restart, killing every
	// task.
	TasksCreated func(pids []int) error
	// BeforeRelease, if set, runs when every task is fully restored, just
	// before they run; an error aborts the restart.
	BeforeRelease func(pids []int) error
	// NewTerminal, if set, restores each terminal of the image that was
	// a pty slave whose master was outside the tree (a container's
	// console, its master held by the runtime's console socket) as a new
	// pty of the devpts it was on, numbered as it was, with its settings
	// (termios, window size), instead of needing a substitute: its master
	// is passed to NewTerminal, which must not keep that *os.File open
	// after it returns (CRIU's orphan_pts_master; a runtime hands it to
	// the console socket). An error fails the restart. The session whose
	// controlling terminal it was gets none. A substitute given for an
	// fd on it is used instead.
	NewTerminal func(master *os.File) error
	// Sibling makes the root process a child of the calling process's
	// parent instead of the caller's own (CLONE_PARENT), as a container
	// runtime has CRIU restore its container (rst_sibling): the parent
	// waits for it, and Process.Wait cannot.
	Sibling bool
	// StateDir is where a restart lists what it must undo should it be
	// killed before it can (the cgroups it makes, the names it makes in
	// the file system while it runs), and where it finds and removes what
	// killed restarts left (see cgroup.Hierarchies' Journal and package
	// fsjournal). Empty: nowhere.
	StateDir string
}

// DefaultOptions returns the options of a plain restart: silent, no fd
// preserved, up to ten seconds of waiting for a pid to be freed, state in
// DefaultStateDir.
func DefaultOptions() Options {
	return Options{PidWait: 10 * time.Second, StateDir: DefaultStateDir}
}

// DefaultStateDir is the default Options.StateDir: a tmpfs, emptied at
// boot as cgroups are.
const DefaultStateDir = "/run/crsub"

package ckpt

// Namespace kinds: the value of Namespace.Kind, named as in /proc/PID/ns/.
const (
	NamespaceUTS    = "uts"
	NamespaceIPC    = "ipc"
	NamespaceNet    = "net"
	NamespacePid    = "pid"
	NamespaceTime   = "time"
	NamespaceCgroup = "cgroup"
	NamespaceMnt    = "mnt"
	NamespaceUser   = "user"
)

// Namespace is one namespace processes of the image are in that is not the
// checkpointing crsub's (record TypeNamespace). It is recorded once, before
// the first process record, and defines the objref the processes in it name
// in Process.Namespaces; the records of what it holds (System V objects, a
// network namespace's links) depend on it. A restart makes it again when
// it creates the first process of the tree in it, and fills it from its
// record, unless the caller supplies a namespace of that kind to use instead.
type Namespace struct {
	Kind string `json:"kind"`
	// Inode is the namespace's inode number at checkpoint time (nsfs), by
	// which messages name it.
	Inode uint64 `json:"inode"`
	// Pid is the first process of the tree (in tree order) in it: the one
	// a restart creates it with.
	Pid int `json:"pid"`
	// What the namespace holds, for the kinds that hold something small
	// enough to say here; one is set, the one of Kind.
	UTS    *UTSNamespace    `json:"uts,omitempty"`
	Time   *TimeNamespace   `json:"time,omitempty"`
	Cgroup *CgroupNamespace `json:"cgroup,omitempty"`
}

// UTSNamespace is what a UTS namespace holds.
type UTSNamespace struct {
	Hostname   string `json:"hostname"`
	Domainname string `json:"domainname"`
}

// TimeNamespace is a time namespace's offsets from the clocks of the
// namespace crsub is in, in nanoseconds (/proc/PID/timens_offsets).
type TimeNamespace struct {
	Monotonic int64 `json:"monotonic_ns"`
	Boottime  int64 `json:"boottime_ns"`
}

// CgroupNamespace is a cgroup namespace's root in each hierarchy, as
// crsub's cgroup namespace names the cgroups (Cgroup.Path).
type CgroupNamespace struct {
	Roots []Cgroup `json:"roots"`
}

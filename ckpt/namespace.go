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
	// Owner is the inode of the user namespace that owns this one, when
	// that is a user namespace the image records (0: crsub's); for a user
	// namespace, its parent's. A restart makes the namespace from a task in
	// that user namespace, which owns it then.
	Owner uint64 `json:"owner,omitempty"`
	// What the namespace holds, for the kinds that hold something small
	// enough to say here; one is set, the one of Kind.
	UTS    *UTSNamespace    `json:"uts,omitempty"`
	IPC    *IPCNamespace    `json:"ipc,omitempty"`
	Time   *TimeNamespace   `json:"time,omitempty"`
	Cgroup *CgroupNamespace `json:"cgroup,omitempty"`
	Mnt    *MountNamespace  `json:"mnt,omitempty"`
	User   *UserNamespace   `json:"user,omitempty"`
}

// UserNamespace is what a user namespace holds: how its ids map to those of
// crsub's user namespace, its parent (/proc/PID/uid_map, gid_map), and
// whether its processes may call setgroups (/proc/PID/setgroups).
type UserNamespace struct {
	UidMap []IDMap `json:"uid_map"`
	GidMap []IDMap `json:"gid_map"`
	// Setgroups is "allow" or "deny".
	Setgroups string `json:"setgroups"`
}

// IDMap is one line of a uid or gid map: Count ids from Inside in the
// namespace are Outside and on in its parent.
type IDMap struct {
	Inside  uint32 `json:"inside"`
	Outside uint32 `json:"outside"`
	Count   uint32 `json:"count"`
}

// ToInside is the id in the namespace that id of its parent maps to.
func ToInside(maps []IDMap, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.Outside && id-m.Outside < m.Count {
			return m.Inside + (id - m.Outside), true
		}
	}
	return 0, false
}

// IPCNamespace is what an IPC namespace holds beside its objects (records
// TypeSysVShm, TypeSysVSem, TypeSysVMsg; its POSIX message queues are
// TypeMQueue records, as those of crsub's): its limits, the files of
// /proc/sys/kernel and /proc/sys/fs/mqueue that belong to it, by path
// under /proc/sys ("kernel/msgmax"), with their contents.
type IPCNamespace struct {
	Sysctls map[string]string `json:"sysctls"`
}

// SysVSegment is a System V shared memory segment of an IPC namespace the
// image records (record TypeSysVShm, depending on the namespace; the
// memory areas that map it depend on it). Its contents, Size bytes, are
// the payload. Restart makes it again with its id.
type SysVSegment struct {
	SysVShm
	Size int64 `json:"size"`
}

// SysVSemSet is a System V semaphore set of an IPC namespace the image
// records (record TypeSysVSem, depending on the namespace).
type SysVSemSet struct {
	ID     int      `json:"id"`
	Key    int32    `json:"key"`
	Mode   uint32   `json:"mode"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Values []uint16 `json:"values"`
}

// SysVMsgQueue is a System V message queue of an IPC namespace the image
// records (record TypeSysVMsg, depending on the namespace). Its messages,
// oldest first, are the payload: each a little-endian i64 type, a u32
// length, then its bytes.
type SysVMsgQueue struct {
	ID       int    `json:"id"`
	Key      int32  `json:"key"`
	Mode     uint32 `json:"mode"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Qbytes   uint64 `json:"qbytes"`
	Messages int    `json:"messages"`
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

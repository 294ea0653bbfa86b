package ckpt

import (
	"slices"
	"time"
)

// Header is the metadata of the first record: enough for a reader to decide
// whether it can restart the image on this machine.
type Header struct {
	Arch          string    `json:"arch"`           // GOARCH-style name, "amd64"
	KernelRelease string    `json:"kernel_release"` // uname -r of the checkpointing machine
	PageSize      int       `json:"page_size"`
	Created       time.Time `json:"created"`
	Writer        string    `json:"writer"` // "crsub v0.1.0"
	// XStateSize and XFeatures describe the FPU/vector register save area
	// (XCR0); a restart on a CPU with another layout must refuse.
	XStateSize int    `json:"xstate_size,omitempty"`
	XFeatures  uint64 `json:"xfeatures,omitempty"`
	// Parent names the image this one is incremental to, if any: its pages
	// not stored here are the parent's. ParentSize and ParentCreated
	// identify it, so a restart can refuse another file at that path.
	Parent        string    `json:"parent,omitempty"`
	ParentSize    int64     `json:"parent_size,omitempty"`
	ParentCreated time.Time `json:"parent_created,omitzero"`
}

// Trailer is the metadata of the last record. Records counts every record
// before the trailer, the header record included; Bytes is the stream offset
// at which the trailer record starts.
type Trailer struct {
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
}

// ErrorRecord says why a writer gave up; a reader returns it as an error.
type ErrorRecord struct {
	Message string `json:"message"`
}

// Tree lists every task in the image, root first, parents before children,
// so a restart can plan before it reads any per-task state.
type Tree struct {
	Processes []TreeProcess `json:"processes"`
}

// TreeProcess is one process of the tree.
type TreeProcess struct {
	Pid      int    `json:"pid"`
	Ppid     int    `json:"ppid"` // 0 for the root: its parent is not in the image
	Pgid     int    `json:"pgid"`
	Sid      int    `json:"sid"`
	Tids     []int  `json:"tids"` // main thread first
	Comm     string `json:"comm"`
	Zombie   bool   `json:"zombie,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"` // wait status of a zombie
	// NsPid and NsTids are the process's pid and thread ids in its own pid
	// namespace, when it was checkpointed inside one (the root then is 1
	// there); restart --pidns gives them back.
	NsPid  int   `json:"ns_pid,omitempty"`
	NsTids []int `json:"ns_tids,omitempty"`
	// NsPgid is its process group's id in that namespace: the group of
	// a leader gone is made again with it.
	NsPgid int `json:"ns_pgid,omitempty"`
	// SharesFdTable says the process shares its parent's fd table (it
	// was cloned with CLONE_FILES, without CLONE_THREAD): its fds are
	// the parent's, written with the process that owns the table, and a
	// restart forks it with CLONE_FILES. It has no fd records.
	SharesFdTable bool `json:"shares_fd_table,omitempty"`
	// PgidLeaderGone says the process group's leader, not in the image,
	// had exited or left the group when the process was checkpointed: the
	// group lives on in its members, and a restart makes it again.
	PgidLeaderGone bool `json:"pgid_leader_gone,omitempty"`
}

// Process is one process's own state (record TypeProcess). Its objref is the
// process's; every per-process record depends on it.
type Process struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm"`
	Cwd  string `json:"cwd"`
	// CwdDeleted says the working directory was removed: restart gives
	// the process an empty, removed directory as its working directory.
	CwdDeleted bool `json:"cwd_deleted,omitempty"`
	// CwdDev and CwdInode identify the working directory, so that a
	// removed one is the same directory as the fds open on it; for one
	// in /proc of a process that had exited (CwdDeadPid), CwdDev names
	// the proc, by which a restart knows whose pid namespace it shows.
	CwdDev   uint64 `json:"cwd_dev,omitempty"`
	CwdInode uint64 `json:"cwd_inode,omitempty"`
	// CwdMode, CwdUID and CwdGID are a removed working directory's
	// permissions and owner (as crsub's user namespace sees them), which
	// the empty directory restart gives the process has too.
	CwdMode uint32 `json:"cwd_mode,omitempty"`
	CwdUID  uint32 `json:"cwd_uid,omitempty"`
	CwdGID  uint32 `json:"cwd_gid,omitempty"`
	// CwdDeadPid says the working directory is /proc/PID (Cwd, or a
	// directory under it) of a process that had exited: restart makes a
	// process with that pid (any pid if it is taken) for the time of the
	// chdir, and reaps it, as CRIU does.
	CwdDeadPid  int       `json:"cwd_dead_pid,omitempty"`
	Root        string    `json:"root"`
	Umask       uint32    `json:"umask"`
	Personality uint32    `json:"personality"`
	NoNewPrivs  bool      `json:"no_new_privs,omitempty"`
	Creds       Creds     `json:"creds"`
	Rlimits     []Rlimit  `json:"rlimits"`
	Itimers     [3]Itimer `json:"itimers"` // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
	// PosixTimers are the process's timer_create(2) timers.
	PosixTimers []PosixTimer `json:"posix_timers,omitempty"`
	// Dumpable is prctl(PR_GET_DUMPABLE): 1 lets processes of its uid
	// ptrace it and own its /proc files, 0 or 2 gives them to root (of
	// the user namespace of its memory); nil in images that did not
	// record it.
	Dumpable *int `json:"dumpable,omitempty"`
	// Stopped says the process was stopped by a signal (SIGSTOP, SIGTSTP…)
	// when it was checkpointed: it is restored stopped, to be continued
	// with SIGCONT.
	Stopped bool `json:"stopped,omitempty"`
	// StopSignal is the signal that stopped it (SIGSTOP, SIGTSTP, SIGTTIN,
	// SIGTTOU), where it was seen; 0 reads as SIGSTOP.
	StopSignal int `json:"stop_signal,omitempty"`
	// Ctty is set for a session leader whose controlling terminal is a pty
	// the tree holds, or a kernel terminal (a virtual console, a serial
	// line, the console) it holds an fd on.
	Ctty *Ctty `json:"ctty,omitempty"`
	// ChildSubreaper is PR_SET_CHILD_SUBREAPER: orphaned descendants
	// are reparented to this process (init-like supervisors set it).
	ChildSubreaper bool `json:"child_subreaper,omitempty"`
	// OOMScoreAdj is /proc/PID/oom_score_adj.
	OOMScoreAdj int `json:"oom_score_adj,omitempty"`
	// Seccomp is the main thread's seccomp mode (1: strict, 2: filters); SeccompFilters
	// are its filters as raw struct sock_filter arrays, oldest first, as
	// the main thread had them.
	Seccomp        int      `json:"seccomp,omitempty"`
	SeccompFilters [][]byte `json:"seccomp_filters,omitempty"`
	// LoginUID is /proc/PID/loginuid, the audit login uid (4294967295:
	// unset); nil in images that did not record it.
	LoginUID *uint32 `json:"loginuid,omitempty"`
	// Cgroups are the process's cgroups, one per hierarchy, as its main
	// thread is in them; nil in images that did not record them.
	Cgroups []Cgroup `json:"cgroups,omitempty"`
	// Namespaces names, by kind ("uts", "ipc", "pid"…), the namespace
	// records of the namespaces the process is in that are not the
	// checkpointing crsub's; the record depends on each. A kind absent is
	// crsub's namespace of that kind.
	Namespaces map[string]Objref `json:"namespaces,omitempty"`
	Extra      map[string]string `json:"extra,omitempty"`
}

// Creds are a process's user and group ids and capabilities. The ids are
// as crsub's user namespace sees them (/proc/PID/status); a process in a
// user namespace of the image has them through its maps (UserNamespace),
// and its capabilities are in that namespace.
type Creds struct {
	Uid    [4]uint32 `json:"uid"` // real, effective, saved, filesystem
	Gid    [4]uint32 `json:"gid"`
	Groups []uint32  `json:"groups,omitempty"`
	CapInh uint64    `json:"cap_inh"`
	CapPrm uint64    `json:"cap_prm"`
	CapEff uint64    `json:"cap_eff"`
	CapBnd uint64    `json:"cap_bnd"`
	CapAmb uint64    `json:"cap_amb"`
}

// Equal reports whether c and o are the same credentials.
func (c Creds) Equal(o Creds) bool {
	return c.Uid == o.Uid && c.Gid == o.Gid && slices.Equal(c.Groups, o.Groups) && c.CapInh == o.CapInh &&
		c.CapPrm == o.CapPrm && c.CapEff == o.CapEff && c.CapBnd == o.CapBnd && c.CapAmb == o.CapAmb
}

// Rlimit is one resource limit.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Itimer is an interval timer's state, in microseconds.
type Itimer struct {
	IntervalUsec int64 `json:"interval_us"`
	ValueUsec    int64 `json:"value_us"`
}

// PosixTimer is one timer_create(2) timer: how it notifies, as struct
// sigevent says, and its setting when checkpointed.
type PosixTimer struct {
	ID      int    `json:"id"`
	ClockID int    `json:"clock_id"` // negative: a CPU-time clock of a pid or tid
	Notify  int    `json:"notify"`   // sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4
	Signal  int    `json:"signal"`
	Value   uint64 `json:"value"`         // sigev_value
	Tid     int    `json:"tid,omitempty"` // with SIGEV_THREAD_ID
	// The time to the next expiry (0: disarmed) and the interval.
	ValueNsec    int64 `json:"value_ns"`
	IntervalNsec int64 `json:"interval_ns"`
}

// Thread is one thread's state (record TypeThread, depends on its process).
type Thread struct {
	Pid int `json:"pid"`
	Tid int `json:"tid"`
	// Regs is the NT_PRSTATUS register set (struct user_regs_struct, 27
	// 64-bit words on x86_64, including fs_base and gs_base).
	Regs   []uint64 `json:"regs"`
	XState []byte   `json:"xstate"` // NT_X86_XSTATE area
	// Syscall describes a system call the thread was inside when frozen.
	Syscall       *InterruptedSyscall `json:"syscall,omitempty"`
	SigMask       uint64              `json:"sigmask"`
	Pending       []Siginfo           `json:"pending,omitempty"`
	AltStack      AltStack            `json:"altstack"`
	Rseq          *Rseq               `json:"rseq,omitempty"`
	ClearChildTid uint64              `json:"clear_child_tid,omitempty"`
	RobustList    uint64              `json:"robust_list,omitempty"`
	RobustLen     uint64              `json:"robust_len,omitempty"`
	Comm          string              `json:"comm,omitempty"`
	Sched         *Sched              `json:"sched,omitempty"`
	// ParentDeathSignal is PR_GET_PDEATHSIG: the signal this thread gets
	// when the thread that created it exits.
	ParentDeathSignal int `json:"pdeathsig,omitempty"`
	// Seccomp is the thread's own seccomp mode, which may differ from the
	// main thread's: strict mode (1) is set for one thread alone.
	Seccomp int `json:"seccomp,omitempty"`
	// SeccompFilters are the thread's seccomp filters, oldest first, when
	// they are not its process's (Process.SeccompFilters, the main
	// thread's): a thread installs filters of its own. nil: the process's
	// if Seccomp is 2 (filters), none otherwise.
	SeccompFilters [][]byte `json:"seccomp_filters,omitempty"`
	// Creds are the thread's credentials when they are not its process's
	// (Process.Creds, the main thread's): a thread that changed its ids
	// with a raw setresuid(2). nil: the process's.
	Creds *Creds `json:"creds,omitempty"`
	// Cgroups are the thread's cgroups that differ from its process's
	// (a v1 hierarchy's tasks file, a threaded v2 subtree).
	Cgroups []Cgroup `json:"cgroups,omitempty"`
}

// Cgroup is a task's cgroup in one hierarchy.
type Cgroup struct {
	// Controllers names the hierarchy as /proc/PID/cgroup does:
	// "cpu,cpuacct", "name=systemd"; empty for the unified (v2) one.
	Controllers string `json:"controllers"`
	Path        string `json:"path"`
}

// Cgroups are the cgroups of one hierarchy that a restart makes again
// (record TypeCgroups, after the tree and before any process): the tasks'
// own and the ones below them, empty ones too, with their owners, modes and
// settings.
type Cgroups struct {
	// Controllers names the hierarchy as Cgroup.Controllers does.
	Controllers string `json:"controllers"`
	// Roots are where the recorded cgroups start: the tasks' cgroups that
	// are below no other task's, or the cgroup the checkpoint was given
	// for the hierarchy. Every task's cgroup of the hierarchy is at or
	// below one of them; a restart can put each elsewhere (a new root).
	Roots []string `json:"roots"`
	// Dirs are the cgroups at and below Roots, parents first. Below the
	// hierarchy's root cgroup, which belongs to the whole system, only
	// what the checkpoint was asked for is recorded.
	Dirs []CgroupDir `json:"dirs,omitempty"`
}

// CgroupDir is one cgroup: its directory's owner and permission bits, and
// its settings.
type CgroupDir struct {
	Path  string       `json:"path"`
	Mode  uint32       `json:"mode"`
	UID   uint32       `json:"uid"`
	GID   uint32       `json:"gid"`
	Files []CgroupFile `json:"files,omitempty"`
}

// CgroupFile is one file of a cgroup: a setting (memory.limit_in_bytes,
// devices.list, cgroup.subtree_control…) with its value as read, or a file
// recorded for its owner and mode alone (cgroup.procs, tasks), without.
type CgroupFile struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
	Mode  uint32  `json:"mode"`
	UID   uint32  `json:"uid"`
	GID   uint32  `json:"gid"`
}

// Sched is how a thread is scheduled: sched_getattr's policy, flags, nice,
// real-time priority and deadline parameters, its CPU affinity (mask words,
// CPU 0 the lowest bit of the first) and its I/O priority (ioprio_get's
// encoding).
type Sched struct {
	Policy   uint32   `json:"policy"`
	Flags    uint64   `json:"flags,omitempty"`
	Nice     int32    `json:"nice,omitempty"`
	Priority uint32   `json:"priority,omitempty"`
	Runtime  uint64   `json:"runtime,omitempty"`
	Deadline uint64   `json:"deadline,omitempty"`
	Period   uint64   `json:"period,omitempty"`
	Affinity []uint64 `json:"affinity,omitempty"`
	IOPrio   int      `json:"ioprio,omitempty"`
}

// InterruptedSyscall is a system call a thread was stopped in: Nr is
// orig_rax, Ret the value in rax at the stop (a -ERESTART* code when the
// kernel would have restarted it).
type InterruptedSyscall struct {
	Nr   int64     `json:"nr"`
	Ret  int64     `json:"ret"`
	Args [6]uint64 `json:"args"`
}

// Siginfo is a queued signal's raw 128-byte siginfo_t.
type Siginfo struct {
	Signo int    `json:"signo"`
	Raw   []byte `json:"raw"`
}

// AltStack is a thread's sigaltstack.
type AltStack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// Rseq is a thread's restartable-sequences registration.
type Rseq struct {
	Addr      uint64 `json:"addr"`
	Len       uint32 `json:"len"`
	Flags     uint32 `json:"flags"`
	Signature uint32 `json:"signature"`
}

// Signals holds a process's dispositions and its shared pending queue
// (record TypeSignals, depends on the process).
type Signals struct {
	Pid           int         `json:"pid"`
	Actions       []SigAction `json:"actions"` // only non-default dispositions
	SharedPending []Siginfo   `json:"shared_pending,omitempty"`
}

// SigAction is one signal's disposition as the kernel's struct sigaction.
type SigAction struct {
	Signo    int    `json:"signo"`
	Handler  uint64 `json:"handler"` // SIG_DFL 0, SIG_IGN 1, else an address
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// MM is an address space's fields (record TypeMM, depends on its process;
// defines the mm objref every VMA record depends on).
type MM struct {
	Pid        int          `json:"pid"`
	StartCode  uint64       `json:"start_code"`
	EndCode    uint64       `json:"end_code"`
	StartData  uint64       `json:"start_data"`
	EndData    uint64       `json:"end_data"`
	StartBrk   uint64       `json:"start_brk"`
	Brk        uint64       `json:"brk"`
	StartStack uint64       `json:"start_stack"`
	ArgStart   uint64       `json:"arg_start"`
	ArgEnd     uint64       `json:"arg_end"`
	EnvStart   uint64       `json:"env_start"`
	EnvEnd     uint64       `json:"env_end"`
	Auxv       []uint64     `json:"auxv"` // type, value pairs, ending with AT_NULL
	Exe        FileIdentity `json:"exe"`
	// ExeGhost is the ghost record of the executable when its last name
	// was removed (a binary replaced by an upgrade; Exe.Path is the name
	// it had): restart makes the file again from it and makes it the
	// executable, shown as removed in /proc/PID/exe as before.
	ExeGhost Objref `json:"exe_ghost,omitempty"`
	// Layout lists every area of the address space, in address order, so
	// that a restart can plan (choose scratch memory free in the target,
	// place the vDSO) before the first VMA record arrives.
	Layout []Area `json:"layout"`
	// Membarrier holds the membarrier(2) registrations of the address
	// space, as MEMBARRIER_CMD_GET_REGISTRATIONS gives them: the
	// MEMBARRIER_CMD_REGISTER_* commands a restart runs again.
	Membarrier uint32 `json:"membarrier,omitempty"`
	// THPDisable is what prctl(PR_GET_THP_DISABLE) returns: 0, or 1 with
	// the PR_SET_THP_DISABLE flags (PR_THP_DISABLE_EXCEPT_ADVISED, 2)
	// above it. Forked children and exec keep it.
	THPDisable uint32 `json:"thp_disable,omitempty"`
}

// Area is an address range and what it holds (a VMA kind).
type Area struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	Kind  string `json:"kind"`
}

// FileIdentity identifies a file on disk so a restart can tell whether it
// changed since the checkpoint.
type FileIdentity struct {
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	// MountNamespace is, for a file the process's root does not show
	// (mapped or executed before it left that mount namespace, by
	// pivot_root), the inode at checkpoint of the mount namespace of the
	// image whose root shows it at Path: it is opened there again.
	MountNamespace uint64 `json:"mount_namespace,omitempty"`
}

// VMA kinds.
const (
	VMAAnon       = "anon"
	VMAFile       = "file"
	VMAHeap       = "heap"
	VMAStack      = "stack"
	VMAVdso       = "vdso"
	VMAVvar       = "vvar"
	VMAVvarVclock = "vvar_vclock"
	VMAVsyscall   = "vsyscall"
	// VMAAio is an AIO ring (io_setup(2)), whose address is its context
	// id. Its pages hold the ring as the kernel writes it: a header
	// (struct aio_ring: nr, head, tail…) and the completed events. A
	// restart makes a ring of the same size, brings the kernel's tail and
	// the head where they were, and moves it here. Requests still in
	// flight are not kept.
	VMAAio = "aio"
	// VMAPacketRing maps the rings of a packet socket (VMA.PacketSocket).
	VMAPacketRing = "packet_ring"
)

// VMA is one memory area (record TypeVMA, depends on the mm; a file mapping
// names its file by identity). The pages stored for it follow in Pages
// records.
type VMA struct {
	Pid       int           `json:"pid"`
	Start     uint64        `json:"start"`
	End       uint64        `json:"end"`
	Prot      int           `json:"prot"`  // PROT_READ|PROT_WRITE|PROT_EXEC
	Flags     int           `json:"flags"` // MAP_PRIVATE, MAP_SHARED or MAP_DROPPABLE, MAP_ANONYMOUS, MAP_GROWSDOWN, MAP_NORESERVE
	Kind      string        `json:"kind"`
	Pgoff     uint64        `json:"pgoff"` // file offset in bytes
	File      *FileIdentity `json:"file,omitempty"`
	MadvFlags []string      `json:"madv,omitempty"` // madvise/mlock state: the Madv… names
	// Memfd is the memfd object this VMA maps (also a dependency).
	Memfd Objref `json:"memfd,omitempty"`
	// PacketSocket is, for a mapping of a packet socket's rings, the
	// socket's inode (the File.Identity.Inode of a file record of the
	// same process, which comes after): no pages are stored, the rings
	// are mapped again once the socket is restored.
	PacketSocket uint64 `json:"packet_socket,omitempty"`
	// Shmem identifies the shared memory object behind a shared anonymous
	// mapping (its inode at checkpoint time): every VMA with the same value,
	// in any process, maps one object. Its contents are stored once, with
	// the first such VMA; Pgoff is the offset into the object.
	Shmem uint64 `json:"shmem,omitempty"`
	// ShmemSize is the size in bytes of the Shmem object, set on its
	// first VMA by writers that store the object whole: its pages records
	// then count pages from the object's start (Pages.ShmemObject), and a
	// restart creates the object whole, whatever part of it this VMA maps.
	// Without it, the object is this VMA, from offset 0.
	ShmemSize uint64 `json:"shmem_size,omitempty"`
	// FileWrite says that the file of a shared file mapping was open for
	// writing (smaps' mw), whatever Prot is now: the program may mprotect
	// it writable, and a restart opens the file so.
	FileWrite bool `json:"file_write,omitempty"`
	// Guards are the runs of pages made guard pages
	// (madvise(MADV_GUARD_INSTALL)): any access faults. They hold nothing
	// and are made guard pages again once the VMA's pages are in.
	Guards []PageRun `json:"guards,omitempty"`
}

// GuardPages is how many guard pages the VMA has.
func (v *VMA) GuardPages() uint64 {
	var n uint64
	for _, g := range v.Guards {
		n += g.Count
	}
	return n
}

// Names in VMA.MadvFlags.
const (
	MadvDontFork    = "dontfork"    // MADV_DONTFORK
	MadvWipeOnFork  = "wipeonfork"  // MADV_WIPEONFORK
	MadvDontDump    = "dontdump"    // MADV_DONTDUMP
	MadvHugePage    = "hugepage"    // MADV_HUGEPAGE
	MadvNoHugePage  = "nohugepage"  // MADV_NOHUGEPAGE
	MadvMergeable   = "mergeable"   // MADV_MERGEABLE
	MadvLocked      = "locked"      // mlock
	MadvLockOnFault = "lockonfault" // mlock2(MLOCK_ONFAULT)
	MadvSequential  = "sequential"  // MADV_SEQUENTIAL
	MadvRandom      = "random"      // MADV_RANDOM
)

// Pages holds stored pages of one VMA (record TypePages, depends on the mm;
// follows its VMA record). Its payload is the pages of Runs, in order,
// PageSize bytes each. A large VMA's pages come in several records so that
// neither writer nor reader holds more than one record's worth.
type Pages struct {
	Pid      int       `json:"pid"`
	VMAStart uint64    `json:"vma_start"`
	Runs     []PageRun `json:"runs"`
	// ShmemObject says that Runs count pages of the VMA's shared memory
	// object from its start (VMA.ShmemSize), not of the VMA: they may lie
	// outside it, and no address of the process holds them.
	ShmemObject bool `json:"shmem_object,omitempty"`
}

// PageRun is Count consecutive stored pages starting at page Index of a VMA.
type PageRun struct {
	Index uint64 `json:"index"`
	Count uint64 `json:"count"`
}

// Count is how many pages the record's payload holds.
func (p *Pages) Count() uint64 {
	var n uint64
	for _, r := range p.Runs {
		n += r.Count
	}
	return n
}

// File kinds: the value of File.Kind, one per kind of open file. Each is
// written and restored by one kind in internal/files.
const (
	FileRegular    = "regular"
	FileDirectory  = "directory"
	FileSymlink    = "symlink" // an O_PATH|O_NOFOLLOW description of a symbolic link
	FileCharDev    = "chardev"
	FileTTY        = "tty"  // a terminal outside the image: always external
	FileCtty       = "ctty" // /dev/tty of a process whose controlling terminal is a pty of the image
	FileTun        = "tun"  // /dev/net/tun attached to a tun or tap device of a network namespace of the image
	FilePtyMaster  = "pty-master"
	FilePtySlave   = "pty-slave"
	FilePipe       = "pipe"
	FileFIFO       = "fifo"
	FileMemfd      = "memfd"
	FileEpoll      = "epoll"
	FileEventfd    = "eventfd"
	FileTimerfd    = "timerfd"
	FileSignalfd   = "signalfd"
	FileInotify    = "inotify"
	FileFanotify   = "fanotify"
	FilePidfd      = "pidfd"
	FileNamespace  = "namespace"  // one of the process's own namespaces (/proc/self/ns/TYPE); Path is TYPE
	FileSocket     = "socket"     // a listening TCP socket
	FileTCP        = "tcp"        // an established or half-closed TCP connection
	FileTCPClosed  = "tcp-closed" // a TCP socket never connected nor listening
	FileUDP        = "udp"
	FileRawIP      = "raw"
	FileNetlink    = "netlink"
	FilePacket     = "packet"      // an AF_PACKET socket
	FileUnixSocket = "unix-socket" // one end of a pair held in the image
	FileUnixListen = "unix-listen"
	FileUnixBound  = "unix-bound" // bound, unbound or disconnected, without a peer
	FileMQueue     = "mqueue"     // a POSIX message queue descriptor (mq_open)
	FileInflight   = "in-flight"  // the client of a connection a listener of the image had not accepted
)

// File is an open file description (record TypeFile; defines the file
// objref that fd entries depend on; a pipe end depends on its pipe). A
// deleted regular file's contents travel as payload.
type File struct {
	Kind     string       `json:"kind"`
	Path     string       `json:"path,omitempty"`
	Flags    int          `json:"flags"` // open(2) flags: access mode, O_APPEND, O_NONBLOCK…
	Pos      int64        `json:"pos"`
	Mode     uint32       `json:"mode"` // st_mode
	Rdev     uint64       `json:"rdev,omitempty"`
	Identity FileIdentity `json:"identity"`
	Deleted  bool         `json:"deleted,omitempty"`
	// UID and GID are a removed directory's owner (as crsub's user
	// namespace sees them), which the empty directory restart opens in
	// its stead has too.
	UID uint32 `json:"uid,omitempty"`
	GID uint32 `json:"gid,omitempty"`
	// MountNamespace is, for a file opened in another mount namespace of
	// the image than its process's (on a mount of that one), that
	// namespace's inode at checkpoint: the file is opened there again.
	MountNamespace uint64 `json:"mount_namespace,omitempty"`
	// DeadPid says Path is /proc/DeadPid, or a file under it, of a
	// process that had exited, on the proc of Identity.Dev: a restart
	// opens it through a process made to stand for that one (with that
	// pid if it is free) and reaped before the tasks run, as for
	// Process.CwdDeadPid.
	DeadPid int `json:"dead_pid,omitempty"`
	// Handle opens a file whose name was removed while another link
	// remains (open_by_handle_at on the filesystem of Path's directory).
	Handle *FileHandle `json:"handle,omitempty"`
	// Linked is another name of a file opened by Handle, as its process
	// named it (on the mount it was opened on): it opens the file when its
	// filesystem was made anew and the handle is stale.
	Linked string `json:"linked,omitempty"`
	// LinkedNamespace is the mount namespace of the image Linked is a
	// name in, when that is not its process's.
	LinkedNamespace uint64 `json:"linked_namespace,omitempty"`
	// MountPoint is the mount point, in its process's mount namespace,
	// of the mount a removed file was opened on, when that namespace
	// shows it: the file found by Linked, or its ghost, is opened again
	// on that mount.
	MountPoint string `json:"mount_point,omitempty"`
	// PipeEnd is "read" or "write" for pipe and FIFO ends.
	PipeEnd string `json:"pipe_end,omitempty"`
	// External marks a file whose other side is outside the image (a
	// terminal, a pipe to a process that was not checkpointed): a restart
	// needs a substitute for every fd bound to it.
	External       bool   `json:"external,omitempty"`
	ExternalReason string `json:"external_reason,omitempty"`
	// Supplied marks a file object that the image filter removed on
	// purpose: the fd slot stays and is filled at restart by a substitute.
	Supplied bool `json:"supplied,omitempty"`
	// Socket describes a socket file.
	Socket *Socket `json:"socket,omitempty"`
	// Owner is who gets SIGIO/SIGURG for the file (F_SETOWN_EX) and with
	// which signal (F_SETSIG), when set.
	Owner *FileOwner `json:"owner,omitempty"`
	// Locks are the file locks the processes of the image hold through
	// this open file description (flock, OFD) or on its file (POSIX).
	Locks []FileLock `json:"locks,omitempty"`
	// Eventfd, Timerfd, Signalfd and Inotify describe the anonymous-inode
	// file of their kind ("eventfd", "timerfd", "signalfd", "inotify");
	// its O_NONBLOCK is in Flags.
	Eventfd  *EventfdState  `json:"eventfd,omitempty"`
	Timerfd  *TimerfdState  `json:"timerfd,omitempty"`
	Signalfd *SignalfdState `json:"signalfd,omitempty"`
	Inotify  *InotifyState  `json:"inotify,omitempty"`
	Tun      *TunFile       `json:"tun,omitempty"`
	Fanotify *FanotifyState `json:"fanotify,omitempty"`
	// Pidfd is the process a pidfd refers to.
	Pidfd *PidfdState `json:"pidfd,omitempty"`
	// Terminal is, for an external terminal that is a pty slave (its
	// master outside the tree: a container's console), its settings,
	// which a new pty made for it at restart takes
	// (restart.Options.NewTerminal).
	Terminal *TerminalSettings `json:"terminal,omitempty"`
}

// TerminalSettings are a terminal's line settings and window size.
type TerminalSettings struct {
	// Termios is its struct termios2 (TCGETS2), raw.
	Termios []byte `json:"termios"`
	// Window size (TIOCGWINSZ).
	Rows   uint16 `json:"rows"`
	Cols   uint16 `json:"cols"`
	XPixel uint16 `json:"xpixel,omitempty"`
	YPixel uint16 `json:"ypixel,omitempty"`
}

// PidfdState is the process a pidfd refers to: its pid, and its start time
// (clock ticks after boot, /proc/PID/stat), which tells whether a process
// outside the image with that pid is still the same one at restart.
type PidfdState struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	// Dead says the process had exited (and was reaped): Pid is -1. The
	// pidfds of one dead process share the file's inode (Identity).
	Dead bool `json:"dead,omitempty"`
}

// EventfdState is an eventfd's counter and mode.
type EventfdState struct {
	Count     uint64 `json:"count"`
	Semaphore bool   `json:"semaphore,omitempty"` // EFD_SEMAPHORE
}

// TimerfdState is a timerfd's clock and setting, read with timerfd_gettime
// at checkpoint time. Times are in nanoseconds; Value 0 means disarmed.
type TimerfdState struct {
	ClockID      int `json:"clockid"`
	SettimeFlags int `json:"settime_flags,omitempty"` // TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET
	// Value is the time that was left until the next expiry; a relative
	// timer is restarted with it. Deadline is that expiry on ClockID, which
	// an absolute timer (TFD_TIMER_ABSTIME) is restarted with.
	Value    int64 `json:"value_ns"`
	Deadline int64 `json:"deadline_ns,omitempty"`
	Interval int64 `json:"interval_ns,omitempty"`
	// Ticks counts the expirations not read yet.
	Ticks uint64 `json:"ticks,omitempty"`
}

// SignalfdState is a signalfd's mask (bit n-1 is signal n).
type SignalfdState struct {
	Sigmask uint64 `json:"sigmask"`
}

// InotifyState is an inotify instance's watches, in watch-descriptor order.
// Events not read at checkpoint time are not kept.
type InotifyState struct {
	Watches []InotifyWatch `json:"watches,omitempty"`
}

// InotifyWatch is one watch: the watched file by path (and identity, to
// tell whether it was replaced), its mask and its watch descriptor. A file
// whose last name was removed is its ghost record instead (which the
// inotify file depends on), and one removed but linked elsewhere its handle.
type InotifyWatch struct {
	WD     int         `json:"wd"`
	Path   string      `json:"path"`
	Mask   uint32      `json:"mask"`
	Dev    uint64      `json:"dev"`
	Inode  uint64      `json:"inode"`
	Handle *FileHandle `json:"handle,omitempty"`
	Ghost  Objref      `json:"ghost,omitempty"`
	// MountNamespace is, for a file on a mount crsub did not see, the
	// inode at checkpoint of the mount namespace of the image Path is a
	// name in.
	MountNamespace uint64 `json:"mount_namespace,omitempty"`
}

// TunFile is the device a /dev/net/tun description is attached to
// (TUNSETIFF): by name, in the network namespace it was opened in.
type TunFile struct {
	Device string `json:"device"`
	// Flags are what TUNSETIFF was given: IFF_TUN or IFF_TAP, IFF_NO_PI,
	// IFF_VNET_HDR, IFF_MULTI_QUEUE.
	Flags uint16 `json:"flags"`
	// Detached says the queue was detached (TUNSETQUEUE IFF_DETACH_QUEUE).
	Detached bool `json:"detached,omitempty"`
	// Persist says the device was persistent (TUNSETPERSIST).
	Persist bool `json:"persist,omitempty"`
}

// FanotifyState is a fanotify group: its fanotify_init flags and its
// marks, in the order they were added. Events not read at checkpoint time
// are not kept.
type FanotifyState struct {
	Flags      uint32         `json:"flags"`       // fanotify_init flags (FAN_CLASS_*, FAN_REPORT_*…)
	EventFlags uint32         `json:"event_flags"` // fanotify_init event_f_flags
	Marks      []FanotifyMark `json:"marks,omitempty"`
}

// Fanotify mark kinds: FanotifyMark.Kind.
const (
	FanotifyInode      = "inode"
	FanotifyMount      = "mount"
	FanotifyFilesystem = "filesystem"
)

// FanotifyMark is one mark: what it is on, its mark flags (as fdinfo's
// mflags: FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE,
// FAN_MARK_IGNORE) and its event and ignore masks. An inode mark's file is
// Path, Dev and Inode, or its ghost or handle as for an inotify watch; a
// mount mark's mount is the one at Path (MountID at checkpoint time); a
// filesystem mark's filesystem is Dev's, at Path.
type FanotifyMark struct {
	Kind        string      `json:"kind"`
	Path        string      `json:"path"`
	Dev         uint64      `json:"dev"`
	Inode       uint64      `json:"inode,omitempty"`
	MountID     int         `json:"mount_id,omitempty"`
	Flags       uint32      `json:"flags,omitempty"`
	Mask        uint32      `json:"mask"`
	IgnoredMask uint32      `json:"ignored_mask,omitempty"`
	Handle      *FileHandle `json:"handle,omitempty"`
	Ghost       Objref      `json:"ghost,omitempty"`
	// MountNamespace: see InotifyWatch.
	MountNamespace uint64 `json:"mount_namespace,omitempty"`
}

// Socket is what a socket file needs beyond a file: its family, type,
// state, addresses and options.
type Socket struct {
	Family   int    `json:"family"` // AF_INET, AF_INET6, AF_UNIX, AF_NETLINK
	Type     int    `json:"type"`   // SOCK_STREAM, SOCK_DGRAM…
	Protocol int    `json:"protocol"`
	State    string `json:"state"`           // "listen", …
	Local    string `json:"local,omitempty"` // host:port, a unix path, or a netlink port id
	Peer     string `json:"peer,omitempty"`
	Backlog  int    `json:"backlog,omitempty"`
	// NetNS is the inode of the network namespace the socket is in: a
	// restart makes it in the image's namespace of that inode when the
	// process restoring it is in another (a socket made before its
	// process moved with setns).
	NetNS uint64 `json:"netns,omitempty"`
	// Options holds integer socket options by name ("SO_REUSEADDR"…).
	Options map[string]int `json:"options,omitempty"`
	// Device is the interface the socket is bound to (SO_BINDTODEVICE).
	Device string `json:"device,omitempty"`
	// ICMPFilter is a raw ICMP socket's filter (struct icmp_filter or
	// icmp6_filter), if it blocks any type.
	ICMPFilter []byte `json:"icmp_filter,omitempty"`
	// BindReusePort says SO_REUSEPORT, off now, was on when the socket
	// was bound: another listener of the image shares its port. A restart
	// binds it with the option on, and turns it off at the end.
	BindReusePort bool `json:"bind_reuseport,omitempty"`
	// Filter is the classic BPF program attached with SO_ATTACH_FILTER
	// (struct sock_filter instructions, 8 bytes each), and FilterLocked
	// SO_LOCK_FILTER.
	Filter       []byte `json:"filter,omitempty"`
	FilterLocked bool   `json:"filter_locked,omitempty"`
	// TCP is an established connection's repair state.
	TCP *TCPState `json:"tcp,omitempty"`
	// PairEnd says which end of its unix pair (record TypeUnixPair, which
	// the file depends on) a connected unix socket is: 0 or 1.
	PairEnd int `json:"pair_end,omitempty"`
	// Groups are a netlink socket's multicast groups, by number.
	Groups []uint32 `json:"groups,omitempty"`
	// Packet is a packet socket's state besides its options.
	Packet *PacketState `json:"packet,omitempty"`
	// Shutdown is a unix socket without a peer's, or a TCP socket never
	// connected's, sk_shutdown (1: reading shut down, 2: writing), and
	// Queued what was queued for it: the bytes
	// (the file record's payload) and, for datagram and seqpacket sockets,
	// the length of each message.
	Shutdown int   `json:"shutdown,omitempty"`
	Queued   int64 `json:"queued,omitempty"`
	Messages []int `json:"messages,omitempty"`
	// Senders are, for a named unix datagram socket, the name each queued
	// datagram came from ("" for an unnamed sender).
	Senders []string `json:"senders,omitempty"`
	// Ancillary is what the messages queued for a unix socket without a
	// peer carry besides their bytes.
	Ancillary []Ancillary `json:"ancillary,omitempty"`
	// File is the socket file a unix socket bound to a path made: its
	// mode and owner, given back to the one bind makes again.
	File *SocketFile `json:"file,omitempty"`
	// Dir is, for a unix socket bound to a relative path, the directory it
	// was bound in (where its file is), which a restart binds it in again
	// whatever the working directory is now.
	Dir string `json:"dir,omitempty"`
	// Deleted says the file a unix socket's bind made was removed since
	// (unlinked, or replaced by another file of that name): a restart
	// binds it again at its path, moving aside whatever is there and
	// making the directories that are gone, then removes its file and
	// puts everything back.
	Deleted bool `json:"deleted,omitempty"`
	// PeerInode is, for a unix socket connected to a named one (Peer) or
	// a waiting connection's client, the inode of the socket it connected
	// to: if the image holds that socket, a restart connects to it through
	// its file, which its name may no longer lead to.
	PeerInode uint64 `json:"peer_inode,omitempty"`
}

// Ancillary is what one message queued at a unix socket carries besides
// its bytes: files (SCM_RIGHTS), by their file records (which the record
// of the queue depends on), and its sender's credentials (SCM_CREDENTIALS,
// where the receiver asked for them with SO_PASSCRED).
type Ancillary struct {
	Message int       `json:"message"` // its index in the queue (a stream's chunks count as messages)
	Files   []Objref  `json:"files,omitempty"`
	Creds   *MsgCreds `json:"creds,omitempty"`
}

// MsgCreds are a message sender's credentials (struct ucred).
type MsgCreds struct {
	Pid int32  `json:"pid"`
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// SocketFile is the mode (permission bits) and owner of a unix socket's
// file.
type SocketFile struct {
	Mode uint32 `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
}

// FileHandle is a file handle (name_to_handle_at): its type and bytes.
type FileHandle struct {
	Type  int32  `json:"type"`
	Bytes []byte `json:"bytes"`
}

// MQueue is a POSIX message queue (record TypeMQueue): the file records of
// the descriptions open on it depend on it. Its messages are the payload,
// in the order mq_receive gives them (highest priority first), each a
// little-endian uint32 priority and uint32 length, then its bytes.
type MQueue struct {
	Name     string `json:"name"` // without the leading '/'; "" if unlinked
	Inode    uint64 `json:"inode"`
	Mode     uint32 `json:"mode"` // permission bits
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	MaxMsg   int64  `json:"maxmsg"`
	MsgSize  int64  `json:"msgsize"`
	Messages int    `json:"messages"`
	// NotifyPid is the process registered with mq_notify (0: none), as
	// the image knows it, and NotifySignal the signal it asked for
	// (SIGEV_SIGNAL; 0 with NotifyNone). The sigev_value is not kept:
	// the kernel does not show it.
	NotifyPid    int  `json:"notify_pid,omitempty"`
	NotifyNone   bool `json:"notify_none,omitempty"`
	NotifySignal int  `json:"notify_signal,omitempty"`
}

// Ghost is a file that was open while its last name was removed (record
// TypeGhost): a regular file, a device node, a FIFO, a symbolic link. The file records of
// the descriptions open on it depend on it, so that they are one inode
// again after restart. A regular file's data extents (SEEK_DATA) are the
// payload, their bytes one after the other; what lies between them are
// holes.
type Ghost struct {
	Path  string `json:"path"` // its name before it was removed
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	Mode  uint32 `json:"mode"` // st_mode, its type included
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Rdev  uint64 `json:"rdev,omitempty"`
	Size  int64  `json:"size,omitempty"`
	// Atime and Mtime are in nanoseconds since the epoch.
	Atime   int64    `json:"atime_ns"`
	Mtime   int64    `json:"mtime_ns"`
	Extents []Extent `json:"extents,omitempty"`
	// MountNamespace is, for a file removed in another mount namespace of
	// the image than that of the process dumping it, that namespace's
	// inode at checkpoint (File.MountNamespace): it is made again there.
	MountNamespace uint64 `json:"mount_namespace,omitempty"`
	// Target is a symbolic link's contents.
	Target string `json:"target,omitempty"`
}

// Extent is a range of a file's bytes.
type Extent struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// FIFO is a named pipe held in the tree (record TypeFIFO), with the bytes
// buffered in it as payload; the file records of its descriptions depend on
// it (and on its ghost, if its name was removed).
type FIFO struct {
	Path  string `json:"path"`
	Inode uint64 `json:"inode"`
	Size  int    `json:"size"` // F_GETPIPE_SZ
}

// Pipe is a pipe object (record TypePipe) with its buffered bytes as payload.
type Pipe struct {
	Inode uint64 `json:"inode"`
	Size  int    `json:"size"` // F_GETPIPE_SZ
}

// Fd is one fd-table entry (record TypeFd, depends on its process and on its
// file).
type Fd struct {
	Pid     int    `json:"pid"`
	Fd      int    `json:"fd"`
	Cloexec bool   `json:"cloexec,omitempty"`
	File    Objref `json:"file"`
}

// EpollWatch is one file registered with an epoll instance (record
// TypeEpollWatch, depends on the epoll file and on the watched file). Watches
// come after the fd table, so every file they name exists at restart; when
// the watched file is replaced by a substitute, the watch follows it.
type EpollWatch struct {
	Pid    int    `json:"pid"`
	Epoll  Objref `json:"epoll"`
	Target Objref `json:"target"`
	Fd     int    `json:"fd"` // the fd number the file was registered under
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`
}

// UnixPair is two connected unix sockets (record TypeUnixPair; the file
// records of both ends depend on it). Its payload is the bytes queued for
// reading at end 0, then at end 1; Messages gives, for datagram and
// seqpacket sockets, each message's length, so their boundaries survive.
type UnixPair struct {
	Type     int       `json:"type"` // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	Inodes   [2]uint64 `json:"inodes"`
	Bytes    [2]int64  `json:"bytes"`
	Messages [2][]int  `json:"messages,omitempty"`
	// Shutdown is each end's sk_shutdown (1: reading shut down, 2:
	// writing).
	Shutdown [2]int `json:"shutdown,omitempty"`
	// Ancillary is what the messages queued for each end carry besides
	// their bytes; a stream end's Messages are then its chunks.
	Ancillary [2][]Ancillary `json:"ancillary,omitempty"`
	// Later says an end's queue is in a UnixQueue record instead, after
	// the fd table: its messages carry unix sockets, which may be the
	// pair's own ends.
	Later [2]bool `json:"later,omitempty"`
}

// UnixQueue is what is queued for reading at one end of a UnixPair whose
// messages carry unix sockets (record TypeUnixQueue, after the fd table;
// depends on the file records of both ends and of what the messages
// carry). Its payload is the bytes queued; restart sends them again from
// the other end, once every file they carry exists.
type UnixQueue struct {
	Type      int         `json:"type"`
	Receiver  Objref      `json:"receiver"` // the end the bytes are queued at
	Sender    Objref      `json:"sender"`   // its peer, which sends them again
	Bytes     int64       `json:"bytes"`
	Messages  []int       `json:"messages,omitempty"`
	Ancillary []Ancillary `json:"ancillary,omitempty"`
}

// Pty is a pseudo-terminal whose master the tree holds (record TypePty;
// the file records of its master and slave descriptions depend on it).
// Restart makes a new pair, under a new number: programs hold its fds, not
// its name. What was queued in either direction is not kept.
type Pty struct {
	Index int `json:"index"` // the original /dev/pts number, for show
	// Termios is the slave's struct termios2 (TCGETS2), raw.
	Termios []byte `json:"termios"`
	// Window size (TIOCGWINSZ).
	Rows   uint16 `json:"rows"`
	Cols   uint16 `json:"cols"`
	XPixel uint16 `json:"xpixel,omitempty"`
	YPixel uint16 `json:"ypixel,omitempty"`
	Locked bool   `json:"locked,omitempty"` // TIOCGPTLCK
	Packet bool   `json:"packet,omitempty"` // TIOCGPKT
	// HasSlave says the tree holds a description of the slave. Without
	// one, SlaveClosed says every slave was closed (the master reads EIO
	// and polls POLLHUP); neither is a slave never opened, or held
	// outside the tree, which restart does not open either.
	HasSlave    bool `json:"has_slave,omitempty"`
	SlaveClosed bool `json:"slave_closed,omitempty"`
	// MasterClosed says the master was closed: the slaves the tree holds
	// are hung up (reads give 0, writes and ioctls EIO), and there are no
	// settings.
	MasterClosed bool `json:"master_closed,omitempty"`
	// SlaveOwner is the owner and mode of /dev/pts/N (grantpt, fchown).
	SlaveOwner *PtyOwner `json:"slave_owner,omitempty"`
	// ToSlave is what the slave had to read (whole lines in canonical
	// mode), ToMaster what the master had to read.
	ToSlave  []byte `json:"to_slave,omitempty"`
	ToMaster []byte `json:"to_master,omitempty"`
}

// PtyOwner is the owner and permission bits of a pty slave's device node.
type PtyOwner struct {
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Mode uint32 `json:"mode"`
}

// Ctty is a session's controlling terminal: Fd is one of the leader's fds
// on the pty's slave or kernel terminal, through which restart makes it its
// controlling terminal again, with Pgrp as the foreground process group.
// A leader that holds no fd on it has Fd -1 and the pty's number in Pty:
// restart opens the new slave for the moment it takes.
// External says the terminal was a pty slave whose master was outside
// the tree: the session gets it back only on a new pty a restart makes
// for it (restart.Options.NewTerminal), not on a substitute.
type Ctty struct {
	Fd       int  `json:"fd"`
	Pgrp     int  `json:"pgrp"`
	Pty      int  `json:"pty,omitempty"`
	External bool `json:"external,omitempty"`
}

// Memfd is a memfd object (record TypeMemfd): its name, size and seals; its
// contents are the payload. Every fd and every mapping of it depends on it,
// so they stay one object after restart.
type Memfd struct {
	Name  string `json:"name"`
	Inode uint64 `json:"inode"`
	Size  int64  `json:"size"`
	Seals int    `json:"seals,omitempty"` // F_GET_SEALS
	Mode  uint32 `json:"mode,omitempty"`  // permission bits (fchmod)
	// SysV, set for a System V shared memory segment, says which: restart
	// attaches the segment with that id if it still exists, or makes it
	// again with its id, key and mode and fills it from the payload.
	SysV *SysVShm `json:"sysv,omitempty"`
	// SharedAnon says it is shared anonymous memory ("/dev/zero
	// (deleted)"), the object of a MAP_SHARED|MAP_ANONYMOUS mapping, that
	// a private mapping or an fd (opened through /proc/PID/map_files)
	// holds too: restart makes it so again, and the shared anonymous
	// mappings of its inode (VMA shmem) map it rather than an object of
	// their own.
	SharedAnon bool `json:"shared_anon,omitempty"`
}

// SysVShm identifies a System V shared memory segment.
type SysVShm struct {
	ID      int    `json:"id"`
	Key     int32  `json:"key"`
	Mode    uint32 `json:"mode"` // permission bits
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Removed bool   `json:"removed,omitempty"` // IPC_RMID done: it goes once detached
}

// FileOwner is a file's F_SETOWN_EX owner and F_SETSIG signal.
type FileOwner struct {
	Type   int `json:"type"` // F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP
	Pid    int `json:"pid"`
	Signal int `json:"signal,omitempty"`
}

// FileLock is one lock: Kind "flock", "posix" or "ofd"; Write for an
// exclusive lock; Start and Len (0: to the end) for record locks; Pid is
// the holder of a POSIX lock.
type FileLock struct {
	Kind  string `json:"kind"`
	Write bool   `json:"write"`
	Start int64  `json:"start,omitempty"`
	Len   int64  `json:"len,omitempty"`
	Pid   int    `json:"pid,omitempty"`
	// BreakTo is set for a lease someone was breaking: the type it was
	// being broken to, "read" or "unlock". Write is then the type it had
	// before, as its description's access mode says.
	BreakTo string `json:"break_to,omitempty"`
}

// PacketState is what a packet socket (AF_PACKET; Socket.Protocol is the
// protocol it receives as socket(2) takes it: ETH_P_* in network byte
// order) has besides its socket
// options: its interface, its SOL_PACKET options, memberships, fanout
// group and rings. Frames queued or in its rings are not kept.
type PacketState struct {
	Ifindex    int  `json:"ifindex,omitempty"` // the interface it is bound to, 0 for all
	Version    int  `json:"version,omitempty"` // PACKET_VERSION: TPACKET_V1…
	Reserve    int  `json:"reserve,omitempty"`
	Timestamp  int  `json:"timestamp,omitempty"` // PACKET_TIMESTAMP
	CopyThresh int  `json:"copy_thresh,omitempty"`
	Auxdata    bool `json:"auxdata,omitempty"`
	Origdev    bool `json:"origdev,omitempty"`
	VnetHdr    bool `json:"vnet_hdr,omitempty"`
	Loss       bool `json:"loss,omitempty"`
	// Memberships are its PACKET_ADD_MEMBERSHIP requests, each added
	// Count times.
	Memberships []PacketMembership `json:"memberships,omitempty"`
	// Fanout is PACKET_FANOUT's value (group id | type and flags << 16),
	// nil outside a group.
	Fanout *uint32 `json:"fanout,omitempty"`
	// RxRing and TxRing are its rings' geometry (struct tpacket_req3).
	RxRing *PacketRing `json:"rx_ring,omitempty"`
	TxRing *PacketRing `json:"tx_ring,omitempty"`
}

// PacketMembership is one of a packet socket's memberships
// (struct packet_mreq).
type PacketMembership struct {
	Ifindex int    `json:"ifindex"`
	Type    int    `json:"type"` // PACKET_MR_MULTICAST, PACKET_MR_PROMISC…
	Addr    []byte `json:"addr,omitempty"`
	Count   int    `json:"count"`
}

// PacketRing is a packet socket ring's geometry (struct tpacket_req3).
type PacketRing struct {
	BlockSize  uint32 `json:"block_size"`
	BlockNr    uint32 `json:"block_nr"`
	FrameSize  uint32 `json:"frame_size"`
	FrameNr    uint32 `json:"frame_nr"`
	RetireTmo  uint32 `json:"retire_tmo,omitempty"`
	SizeofPriv uint32 `json:"sizeof_priv,omitempty"`
	Features   uint32 `json:"features,omitempty"`
}

// TCPState is what TCP_REPAIR reads of an established connection: sequence
// numbers, what is queued (in the file record's payload: the receive
// queue, then the send queue), window and options.
type TCPState struct {
	SendSeq   uint32    `json:"snd_seq"` // write_seq: after the last byte queued to send
	RecvSeq   uint32    `json:"rcv_seq"` // rcv_nxt: after the last byte received
	InQ       int       `json:"inq"`     // bytes received, not read
	OutQ      int       `json:"outq"`    // bytes queued to send, not acknowledged
	Unsent    int       `json:"unsent"`  // of OutQ, bytes not sent yet
	MSS       int       `json:"mss"`
	SndWscale int       `json:"snd_wscale,omitempty"`
	RcvWscale int       `json:"rcv_wscale,omitempty"`
	Options   int       `json:"options"` // TCPI_OPT_* from TCP_INFO
	Timestamp uint32    `json:"timestamp,omitempty"`
	Window    [5]uint32 `json:"window"` // struct tcp_repair_window
	// Half-closed connections: the peer's FIN arrived after the received
	// data (PeerFin), this side queued its own after the data to send
	// (LocalFin). The sequence numbers and queue sizes above leave the
	// FINs out.
	PeerFin  bool `json:"peer_fin,omitempty"`
	LocalFin bool `json:"local_fin,omitempty"`
}

package ckpt

import "fmt"

// Objref names a shared object (a process, an mm, a file description, a
// pipe…) within one image. Zero means "no object".
type Objref uint64

// Type is a record type. Types are grouped by range, as in Linux-CR: generic,
// tasks, files, memory, signals. A reader skips types it does not know.
type Type uint32

// Record types.
const (
	TypeHeader  Type = 0x0001 // first record: where and how the image was made
	TypeTrailer Type = 0x0002 // last record: counts that prove the stream is whole
	TypeError   Type = 0x0003 // the writer failed; the message says why

	TypeTree    Type = 0x0100 // the task tree, before any per-task state
	TypeProcess Type = 0x0101 // one process: ids, credentials, cwd, limits (defines the process objref)
	TypeThread  Type = 0x0102 // one thread: registers, signal mask, pending signals
	TypeCgroups Type = 0x0103 // one cgroup hierarchy's cgroups to make again: after the tree, before any process

	TypeFile     Type = 0x0200 // an open file description (defines a file objref)
	TypePipe     Type = 0x0201 // a pipe with its buffered data as payload
	TypeUnixPair Type = 0x0203 // a connected pair of unix sockets with both queues as payload
	TypeMemfd    Type = 0x0204 // a memfd: its contents as payload; fds and mappings of it depend on it
	TypePty      Type = 0x0205 // a pseudo-terminal pair held inside the tree: settings; its ends depend on it
	TypeGhost    Type = 0x0206 // a file open but unlinked: owner, mode, times; its data extents as payload
	TypeFIFO     Type = 0x0207 // a FIFO held in the tree, with its buffered bytes as payload
	TypeMQueue   Type = 0x020a // a POSIX message queue: attributes, notification; its messages as payload
	TypeFd       Type = 0x0210 // one fd-table entry: a number in a process bound to a file

	TypeEpollWatch Type = 0x0220 // a file registered with an epoll instance (after the fd table)
	TypeUnixQueue  Type = 0x0221 // what a pair's end has queued when it carries unix sockets (after the fd table): bytes as payload

	TypeMM    Type = 0x0300 // an address space's fields: brk, arg/env, auxv, exe
	TypeVMA   Type = 0x0301 // one memory area
	TypePages Type = 0x0302 // stored pages of the VMA before it, as payload

	TypeSignals Type = 0x0400 // a process's signal dispositions and shared pending signals

	TypeNamespace  Type = 0x0500 // a namespace the processes are in: its kind and what it holds (defines the namespace objref)
	TypeSysVShm    Type = 0x0501 // a System V shared memory segment of an IPC namespace: its contents as payload (defines its objref)
	TypeSysVSem    Type = 0x0502 // a System V semaphore set of an IPC namespace, with its values
	TypeSysVMsg    Type = 0x0503 // a System V message queue of an IPC namespace: its messages as payload
	TypeNetwork    Type = 0x0510 // a network namespace's links, addresses, routes and settings (depends on its namespace)
	TypeMountFiles Type = 0x0520 // the files of a filesystem a mount namespace made (a tmpfs): a tar archive as payload
)

var typeNames = map[Type]string{
	TypeHeader:     "header",
	TypeTrailer:    "trailer",
	TypeError:      "error",
	TypeTree:       "tree",
	TypeProcess:    "process",
	TypeThread:     "thread",
	TypeCgroups:    "cgroups",
	TypeFile:       "file",
	TypePipe:       "pipe",
	TypeUnixPair:   "unix-pair",
	TypeMemfd:      "memfd",
	TypePty:        "pty",
	TypeGhost:      "ghost",
	TypeFIFO:       "fifo",
	TypeMQueue:     "mqueue",
	TypeFd:         "fd",
	TypeEpollWatch: "epoll-watch",
	TypeUnixQueue:  "unix-queue",
	TypeMM:         "mm",
	TypeVMA:        "vma",
	TypePages:      "pages",
	TypeSignals:    "signals",
	TypeNamespace:  "namespace",
	TypeSysVShm:    "sysv-shm",
	TypeSysVSem:    "sysv-sem",
	TypeSysVMsg:    "sysv-msg",
	TypeMountFiles: "mount-files",
	TypeNetwork:    "network",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%#x", uint32(t))
}

// Known reports whether this version of the package knows the type.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

package procfs

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Fds lists the open file descriptors of pid, sorted.
func Fds(pid int) ([]int, error) {
	return readIntDir(pidPath(pid, "fd"))
}

// FdTarget returns the /proc/PID/fd/FD symlink target; see ParseFdTarget.
func FdTarget(pid, fd int) (string, error) {
	t, err := os.Readlink(pidPath(pid, "fd/"+strconv.Itoa(fd)))
	if err != nil {
		return "", err
	}
	return t, nil
}

// readIntDir lists a directory whose entries are all decimal numbers.
func readIntDir(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			return nil, fmt.Errorf("%s: entry %q is not a number", dir, e.Name())
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// FdKind classifies what a file descriptor refers to.
type FdKind uint8

const (
	FdOther       FdKind = iota // anything unrecognised; Path holds the whole target
	FdFile                      // an absolute path
	FdPipe                      // pipe:[ino]
	FdSocket                    // socket:[ino]
	FdEpoll                     // anon_inode:[eventpoll]
	FdEventfd                   // anon_inode:[eventfd]
	FdTimerfd                   // anon_inode:[timerfd]
	FdSignalfd                  // anon_inode:[signalfd]
	FdInotify                   // anon_inode:inotify
	FdFanotify                  // anon_inode:[fanotify]
	FdPidfd                     // anon_inode:[pidfd] or pidfd:[ino]
	FdUserfaultfd               // anon_inode:[userfaultfd]
	FdAnonInode                 // another anon_inode:NAME; Path holds NAME
	FdMemfd                     // /memfd:NAME (deleted); Path holds NAME
	FdNamespace                 // TYPE:[ino] from nsfs (net, mnt, ...); Path holds TYPE
)

func (k FdKind) String() string {
	switch k {
	case FdOther:
		return "other"
	case FdFile:
		return "file"
	case FdPipe:
		return "pipe"
	case FdSocket:
		return "socket"
	case FdEpoll:
		return "epoll"
	case FdEventfd:
		return "eventfd"
	case FdTimerfd:
		return "timerfd"
	case FdSignalfd:
		return "signalfd"
	case FdInotify:
		return "inotify"
	case FdFanotify:
		return "fanotify"
	case FdPidfd:
		return "pidfd"
	case FdUserfaultfd:
		return "userfaultfd"
	case FdAnonInode:
		return "anon_inode"
	case FdMemfd:
		return "memfd"
	case FdNamespace:
		return "namespace"
	}
	return fmt.Sprintf("FdKind(%d)", uint8(k))
}

// FdLink is a parsed /proc/PID/fd symlink target. (It is not called
// FdTarget because that name reads the link.)
type FdLink struct {
	Kind    FdKind
	Path    string // file path without " (deleted)", memfd name, anon_inode name or namespace type
	Inode   uint64 // from "TYPE:[ino]" targets; 0 for files (fstat the fd for theirs)
	Deleted bool
}

// ParseFdTarget classifies a readlink result from /proc/PID/fd. The kernel
// does not escape these names, so a file whose own name ends in
// " (deleted)" is indistinguishable from a deleted one; fstat's link count
// settles it.
func ParseFdTarget(s string) FdLink {
	if strings.HasPrefix(s, "/") {
		p, deleted := strings.CutSuffix(s, deletedSuffix)
		if name, ok := strings.CutPrefix(p, "/memfd:"); ok && deleted {
			return FdLink{Kind: FdMemfd, Path: name, Deleted: true}
		}
		return FdLink{Kind: FdFile, Path: p, Deleted: deleted}
	}
	if name, ok := strings.CutPrefix(s, "anon_inode:"); ok {
		switch name {
		case "[eventpoll]":
			return FdLink{Kind: FdEpoll}
		case "[eventfd]":
			return FdLink{Kind: FdEventfd}
		case "[timerfd]":
			return FdLink{Kind: FdTimerfd}
		case "[signalfd]":
			return FdLink{Kind: FdSignalfd}
		case "inotify":
			return FdLink{Kind: FdInotify}
		case "[fanotify]":
			return FdLink{Kind: FdFanotify}
		case "[pidfd]":
			return FdLink{Kind: FdPidfd}
		case "[userfaultfd]":
			return FdLink{Kind: FdUserfaultfd}
		}
		return FdLink{Kind: FdAnonInode, Path: name}
	}
	// "TYPE:[ino]" names from pipefs, sockfs, nsfs and pidfs.
	if typ, rest, ok := strings.Cut(s, ":["); ok && strings.HasSuffix(rest, "]") && typ != "" {
		ino, err := strconv.ParseUint(rest[:len(rest)-1], 10, 64)
		if err == nil {
			switch typ {
			case "pipe":
				return FdLink{Kind: FdPipe, Inode: ino}
			case "socket":
				return FdLink{Kind: FdSocket, Inode: ino}
			case "pidfd":
				return FdLink{Kind: FdPidfd, Inode: ino}
			}
			if !strings.ContainsAny(typ, " /[]") {
				return FdLink{Kind: FdNamespace, Path: typ, Inode: ino}
			}
		}
	}
	return FdLink{Kind: FdOther, Path: s}
}

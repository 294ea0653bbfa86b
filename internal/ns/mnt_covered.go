package ns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// The files of a tmpfs are read from a mount of it, which other mounts of
// the namespace may cover: mounted on its mount point after it (a child
// at the same path), or on a directory on the way to it (a sibling of it
// or of a mount above it). Its files are then read in a copy of the
// namespace the thread reading them makes for itself, private, in which
// what covers the mount is unmounted, in the order it is seen, as CRIU
// does. In a mount namespace a user namespace of the tree owns, a copy made
// from crsub's user namespace has every mount locked: there a helper forked
// inside a process of the namespace does it (DumpContext.Uncover).

// covered says whether another mount of ms covers mount m.
func covered(ms []ckpt.Mount, m *ckpt.Mount) bool {
	for _, c := range ms {
		if c.Parent == m.ID && c.Path == m.Path {
			return true
		}
	}
	for a := m; a.Parent != 0; a = mountByID(ms, a.Parent) {
		for _, s := range ms {
			if s.Parent == a.Parent && s.ID != a.ID && within(a.Path, s.Path) {
				return true
			}
		}
		if mountByID(ms, a.Parent) == nil {
			break
		}
	}
	return false
}

// mountByID is the mount of ms with id, or nil.
func mountByID(ms []ckpt.Mount, id int) *ckpt.Mount {
	for i := range ms {
		if ms[i].ID == id {
			return &ms[i]
		}
	}
	return nil
}

// uncoverInCopy makes the calling thread (one of its own, in m's
// namespace) a copy of its mount namespace, private, and unmounts there
// what covers m.
func uncoverInCopy(ms []ckpt.Mount, m *ckpt.Mount) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWNS)", err)
	}
	// Unmounting a copy of a shared mount would unmount its peers.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return os.NewSyscallError("mount", fmt.Errorf("making the copy private: %w", err))
	}
	for _, p := range covering(ms, m) {
		if err := unmount(p); err != nil {
			return err
		}
	}
	return nil
}

// covering lists the mount points to unmount, in order, for nothing to
// cover m: the mounts on m's parent, and on those above it, whose mount
// points hold m's, the one seen first (the shortest path) first, each
// after what covers it; then those on m at its own mount point, the last
// of them first.
func covering(ms []ckpt.Mount, m *ckpt.Mount) []string {
	return append(coveringSiblings(ms, m), coveringChildren(ms, m)...)
}

func coveringSiblings(ms []ckpt.Mount, m *ckpt.Mount) []string {
	p := mountByID(ms, m.Parent)
	if m.Parent == 0 || p == nil {
		return nil
	}
	paths := coveringSiblings(ms, p)
	shortest := 0
	for {
		var next *ckpt.Mount
		for i := range ms {
			s := &ms[i]
			if s.Parent == m.Parent && s.ID != m.ID && within(m.Path, s.Path) && len(s.Path) > shortest &&
				(next == nil || len(s.Path) < len(next.Path)) {
				next = s
			}
		}
		if next == nil {
			return paths
		}
		shortest = len(next.Path)
		paths = append(paths, coveringChildren(ms, next)...)
		paths = append(paths, next.Path)
	}
}

func coveringChildren(ms []ckpt.Mount, m *ckpt.Mount) []string {
	var chain []*ckpt.Mount
	for top := m; ; {
		var c *ckpt.Mount
		for i := range ms {
			if ms[i].Parent == top.ID && ms[i].Path == top.Path {
				c = &ms[i]
			}
		}
		if c == nil {
			break
		}
		chain = append(chain, c)
		top = c
	}
	var paths []string
	for i := len(chain) - 1; i >= 0; i-- {
		paths = append(paths, chain[i].Path)
	}
	return paths
}

func unmount(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
		return os.NewSyscallError("umount2", fmt.Errorf("%s, which covers it: %w", p, err))
	}
	return nil
}

package checkpoint

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/remote"
)

// uncover forks a helper inside frozen process pid, in its namespaces,
// which makes its mount namespace a private copy of its own and unmounts
// paths there, in order; it returns the helper's pid and release, which
// kills and reaps it. The files of a tmpfs that other mounts cover are read
// in its namespace (ns.DumpContext.Uncover) when crsub's own copy of the namespace
// cannot unmount them: a copy made from crsub's user namespace of a mount
// namespace a user namespace of the tree owns has every mount locked, and
// a thread of crsub (a process with threads) may not join a user namespace.
func (s *session) uncover(pid int, paths []string) (int, func() error, error) {
	var p *proc
	for _, q := range s.procs {
		if q.pid == pid && len(q.tracees) > 0 {
			p = q
		}
	}
	if p == nil {
		return 0, nil, fmt.Errorf("pid %d is not a frozen process of the tree", pid)
	}
	// Its own filesystem context, for a mount namespace of its own.
	h, err := forkHeld(p, unix.CLONE_FILES|unix.CLONE_SYSVSEM)
	if err != nil {
		return 0, nil, fmt.Errorf("a helper in pid %d: %w", pid, err)
	}
	release := func() error { return h.discard(p.pid, p.tracees[0]) }
	if err := h.uncover(paths); err != nil {
		return 0, nil, errors.Join(fmt.Errorf("helper %d in pid %d: %w", h.pid, pid, err), release())
	}
	return h.pid, release, nil
}

// uncover runs in the held child: a private copy of its mount namespace,
// paths unmounted there.
func (c *cowCopy) uncover(paths []string) error {
	r, err := remote.New(c.tracee)
	if err != nil {
		return err
	}
	// Nothing to put back: the helper is killed once read.
	defer r.Close()
	if _, err := r.MapPage(0); err != nil {
		return err
	}
	if _, err := r.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
	}
	str := func(v string) (uint64, error) {
		if len(v)+1 > r.ScratchSize() {
			return 0, fmt.Errorf("path %s is too long", v)
		}
		return r.ScratchAddr(), r.WriteMem(r.ScratchAddr(), append([]byte(v), 0))
	}
	// Unmounting a copy of a shared mount would unmount its peers.
	slash, err := str("/")
	if err == nil {
		_, err = r.Syscall(unix.SYS_MOUNT, 0, slash, 0, unix.MS_REC|unix.MS_PRIVATE, 0)
	}
	if err != nil {
		return fmt.Errorf("making the copy private: %w", err)
	}
	for _, p := range paths {
		at, err := str(p)
		if err == nil {
			_, err = r.Syscall(unix.SYS_UMOUNT2, at, unix.MNT_DETACH)
		}
		if err != nil {
			return fmt.Errorf("umount2 %s, which covers it: %w", p, err)
		}
	}
	return nil
}

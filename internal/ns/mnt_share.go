package ns

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/sys"
)

// A mount namespace's mounts are given their propagation once its tree is
// whole, every mount private until then: nothing made while the tree is
// built propagates anywhere, each mount the namespace had being made by
// itself, and the peers and slaves of each mount are those the image
// records, in this namespace and the ones made before it (a peer group
// may span namespaces). A mount joins its peer group, with the group's
// master, from a mount of the group whose root holds its own
// (sys.JoinPeerGroup, MOVE_MOUNT_SET_GROUP); the first of a group becomes
// a slave of its master (joining the master group, then a slave of it),
// then shared, in a group of its own. A group or master that had mounts
// outside the namespace is joined from a copy of the external mount's
// path taken in crsub's namespace, which has the propagation of the mount
// it is a copy of (takeExternal). Unbindable mounts are made so last.

// peerGroups are the mounts given their propagation, by the image's peer
// group, across the mount namespaces of a restart: a mount of a group
// joins it from one of them.
type peerGroups map[int][]peer

// peer is a mount of a peer group made again.
type peer struct {
	fd   *sys.FD
	dev  uint64 // of its filesystem at checkpoint
	root string
}

// from is a mount of peer group g whose root holds root on filesystem
// dev: one a mount of it can join the group from.
func (g peerGroups) from(group int, dev uint64, root string) *sys.FD {
	for _, p := range g[group] {
		if p.dev == dev && within(root, p.root) {
			return p.fd
		}
	}
	return nil
}

// share gives the mounts of the tree, whole, their propagation, a
// master's group before its slaves', the mount with the widest root of a
// group first.
func (t *mountTree) share(groups peerGroups) error {
	var todo []*ckpt.Mount
	for i := range t.mounts {
		if m := &t.mounts[i]; m.Shared != 0 || m.Master != 0 {
			todo = append(todo, m)
		}
	}
	slices.SortStableFunc(todo, func(a, b *ckpt.Mount) int { return len(a.Root) - len(b.Root) })
	for len(todo) > 0 {
		var later []*ckpt.Mount
		for _, m := range todo {
			if m.Master != 0 && len(groups[m.Master]) == 0 && t.hasGroup(m.Master) {
				later = append(later, m)
				continue
			}
			if err := t.shareOne(m, groups); err != nil {
				return fmt.Errorf("mount of %s at %s: %w", m.FSType, m.Path, err)
			}
		}
		if len(later) == len(todo) {
			m := later[0]
			return fmt.Errorf("mount of %s at %s: its master, peer group %d, has no mount that can be made first", m.FSType, m.Path, m.Master)
		}
		todo = later
	}
	for _, m := range t.mounts {
		if m.Unbindable {
			if err := sys.SetMountAttr(t.made[m.ID].Int(), 0, 0, unix.MS_UNBINDABLE); err != nil {
				return fmt.Errorf("mount of %s at %s: unbindable: %w", m.FSType, m.Path, err)
			}
		}
	}
	return nil
}

// shareOne gives mount m its propagation, its master's group made.
func (t *mountTree) shareOne(m *ckpt.Mount, groups peerGroups) error {
	fd := t.made[m.ID]
	join := func(group int) {
		groups[group] = append(groups[group], peer{fd: fd, dev: m.Dev, root: m.Root})
	}
	if m.Shared != 0 {
		from := groups.from(m.Shared, m.Dev, m.Root)
		if from == nil && m.SharedOutside {
			from = t.sources[m.ID]
			if from == nil {
				return fmt.Errorf("peer group %d, shared outside the namespace: no copy of its external path", m.Shared)
			}
		}
		if from != nil {
			if err := sys.JoinPeerGroup(from.Int(), fd.Int()); err != nil {
				return fmt.Errorf("joining peer group %d: %w", m.Shared, err)
			}
			join(m.Shared)
			return nil
		}
		if len(groups[m.Shared]) > 0 {
			return fmt.Errorf("peer group %d has no mount made whose root holds its own (%s)", m.Shared, m.Root)
		}
	}
	if m.Master != 0 {
		from := groups.from(m.Master, m.Dev, m.Root)
		if from == nil && !t.hasGroup(m.Master) {
			// A group outside the namespace: the mount its
			// external path is on is a peer or a slave of it.
			from = t.sources[m.ID]
		}
		if from == nil {
			return fmt.Errorf("a slave of peer group %d: no mount of it made whose root holds its own (%s)", m.Master, m.Root)
		}
		if err := sys.JoinPeerGroup(from.Int(), fd.Int()); err != nil {
			return fmt.Errorf("a slave of peer group %d: %w", m.Master, err)
		}
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_SLAVE); err != nil {
			return fmt.Errorf("a slave of peer group %d: %w", m.Master, err)
		}
	}
	if m.Shared != 0 {
		if err := sys.SetMountAttr(fd.Int(), 0, 0, unix.MS_SHARED); err != nil {
			return fmt.Errorf("shared: %w", err)
		}
		join(m.Shared)
	}
	return nil
}

// peerGroups are the mounts of the mount namespaces made so far given
// their propagation.
func (c *RestoreContext) peerGroups() peerGroups {
	if c.peers == nil {
		c.peers = peerGroups{}
	}
	return c.peers
}

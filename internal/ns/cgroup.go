package ns

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A cgroup namespace holds its root: the cgroup, in each hierarchy, its
// processes see as "/". A process's cgroups read from inside the namespace
// are relative to it; read by crsub, they are whole: the root is what the
// inside path leaves of the whole one. A restart moves the first task in
// it to its root cgroups and unshares there, before moving it into its own
// cgroups.
var cgroupKind = &Kind{
	Name:      ckpt.NamespaceCgroup,
	CloneFlag: unix.CLONE_NEWCGROUP,
	Unshared:  true,
	Dump: func(_ *DumpContext, n *ckpt.Namespace, pid int) error {
		whole, err := procfs.ReadCgroups(pid, pid)
		if err != nil {
			return err
		}
		var inside []procfs.Cgroup
		if err := Enter(pid, ckpt.NamespaceCgroup, func() error {
			var err error
			inside, err = procfs.ReadCgroups(pid, pid)
			return err
		}); err != nil {
			return err
		}
		roots, err := cgroupRoots(whole, inside)
		if err != nil {
			return err
		}
		n.Cgroup = &ckpt.CgroupNamespace{Roots: roots}
		return nil
	},
	PrepareTask: func(c *RestoreContext, n *ckpt.Namespace, host int) error {
		if n.Cgroup == nil {
			return nil
		}
		if err := c.MoveToCgroups(host, n.Cgroup.Roots); err != nil {
			return fmt.Errorf("moving pid %d to the namespace's root: %w", host, err)
		}
		return nil
	},
}

// cgroupRoots is, for each hierarchy, the cgroup namespace root that
// makes the whole path of a process's cgroup the inside one.
func cgroupRoots(whole, inside []procfs.Cgroup) ([]ckpt.Cgroup, error) {
	in := map[string]string{}
	for _, c := range inside {
		in[c.Controllers] = c.Path
	}
	var roots []ckpt.Cgroup
	for _, c := range whole {
		rel, ok := in[c.Controllers]
		if !ok {
			return nil, fmt.Errorf("hierarchy %q: not seen from inside the namespace", c.Controllers)
		}
		var root string
		switch {
		case rel == "/":
			root = c.Path
		case strings.HasSuffix(c.Path, rel) && (len(c.Path) == len(rel) || strings.HasPrefix(rel, "/")):
			root = strings.TrimSuffix(c.Path, rel)
			if root == "" {
				root = "/"
			}
		default:
			return nil, fmt.Errorf("hierarchy %q: cgroup %s is %s inside the namespace, outside its root", c.Controllers, c.Path, rel)
		}
		roots = append(roots, ckpt.Cgroup{Controllers: c.Controllers, Path: root})
	}
	return roots, nil
}

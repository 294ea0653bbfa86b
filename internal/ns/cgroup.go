package ns

import (
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A cgroup namespace holds its root: the cgroup, in each hierarchy, its
// processes see as "/".
var cgroupKind = &Kind{
	Name:        ckpt.NamespaceCgroup,
	CloneFlag:   unix.CLONE_NEWCGROUP,
	Unshared:    true,
	Unsupported: "its root is not checkpointed yet",
}

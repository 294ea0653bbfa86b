package ns

import (
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A time namespace holds the offsets of its monotonic and boot-time clocks.
var timeKind = &Kind{
	Name:        ckpt.NamespaceTime,
	CloneFlag:   unix.CLONE_NEWTIME,
	ForChildren: true,
	Unsupported: "its clock offsets are not checkpointed yet",
}

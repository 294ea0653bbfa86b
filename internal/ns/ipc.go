package ns

import (
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// An IPC namespace holds System V shared memory segments, semaphore sets
// and message queues, and POSIX message queues.
var ipcKind = &Kind{
	Name:        ckpt.NamespaceIPC,
	CloneFlag:   unix.CLONE_NEWIPC,
	Unsupported: "its System V objects are not checkpointed yet",
}

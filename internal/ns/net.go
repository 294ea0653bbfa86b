package ns

import (
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A network namespace is made by CLONE_NEWNET when the first task in it is
// created: it then has a loopback link, down, and nothing else. What it
// held — links, addresses, routes — is the net kind's Dump, DumpObjects,
// Restore and Objects to read and make again (net*.go); until they do,
// a process in a network namespace of its own is refused.
var netKind = &Kind{
	Name:        ckpt.NamespaceNet,
	CloneFlag:   unix.CLONE_NEWNET,
	Unsupported: "its links, addresses and routes are not checkpointed yet",
}

package ns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A time namespace holds the offsets of its monotonic and boot-time clocks
// from those of the namespace above. They are read from a process that
// makes its children in it (/proc/PID/timens_offsets shows that one), and
// can only be set on a new namespace no task has entered yet, through the
// task that made it for its children.
var timeKind = &Kind{
	Name:        ckpt.NamespaceTime,
	CloneFlag:   unix.CLONE_NEWTIME,
	ForChildren: true,
	Dump: func(_ *DumpContext, n *ckpt.Namespace, pid int) error {
		fc, err := Inode(pid, "time_for_children")
		if err != nil {
			return err
		}
		if fc != n.Inode {
			return fmt.Errorf("its clock offsets cannot be read: pid %d, the first process in it, makes its children in another", pid)
		}
		o, err := procfs.ReadTimensOffsets(pid)
		if err != nil {
			return err
		}
		n.Time = &ckpt.TimeNamespace{Monotonic: o.Monotonic, Boottime: o.Boottime}
		return nil
	},
	PrepareNew: func(_ *RestoreContext, n *ckpt.Namespace, host int) error {
		t := n.Time
		if t == nil || (t.Monotonic == 0 && t.Boottime == 0) {
			return nil
		}
		path := fmt.Sprintf("/proc/%d/timens_offsets", host)
		if err := os.WriteFile(path, []byte(procfs.FormatTimensOffsets(procfs.TimensOffsets{Monotonic: t.Monotonic, Boottime: t.Boottime})), 0); err != nil {
			return fmt.Errorf("setting its clock offsets: %w", err)
		}
		return nil
	},
}

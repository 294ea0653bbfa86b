package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// An fd on one of the process's own namespaces (open("/proc/self/ns/net"),
// kept to setns back into later) is opened again by the restored process,
// on its namespace of that type: the process is restarted in crsub's
// namespaces, which checkpoint made sure were its own (or, for a pid
// namespace, restart makes it a new one). An fd on another namespace than
// the process's is refused.
var namespaceKind = &Kind{
	Files:  []string{ckpt.FileNamespace},
	Claims: func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdNamespace },
	Dump: func(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
		typ := fd.Link.Path
		var own unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", fd.Pid, typ), &own); err != nil {
			return 0, fmt.Errorf("%s namespace: %w", typ, err)
		}
		if own.Ino != fd.Stat.Ino || own.Dev != fd.Stat.Dev {
			return 0, fmt.Errorf("%s namespace %d is not the process's own (%d): not supported", typ, fd.Stat.Ino, own.Ino)
		}
		f := ckpt.File{Kind: ckpt.FileNamespace, Path: typ, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}}
		ref := c.W.NewObjref()
		return ref, c.WriteFile(fd, ref, nil, &f)
	},
	Restore: func(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
		path := "/proc/self/ns/" + f.Path
		fd, err := t.Open(path, reopenFlags(f.Flags), 0)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, nil
	},
}

package ns

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// A UTS namespace holds a hostname and an NIS domain name, read with
// uname and set again with sethostname and setdomainname, from a thread
// in the namespace.
var utsKind = &Kind{
	Name:      ckpt.NamespaceUTS,
	CloneFlag: unix.CLONE_NEWUTS,
	Dump: func(_ *DumpContext, n *ckpt.Namespace, pid int) error {
		return Enter(pid, ckpt.NamespaceUTS, func() error {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				return err
			}
			n.UTS = &ckpt.UTSNamespace{Hostname: unix.ByteSliceToString(u.Nodename[:]), Domainname: unix.ByteSliceToString(u.Domainname[:])}
			return nil
		})
	},
	Restore: func(_ *RestoreContext, n *Restored) error {
		u := n.Record.UTS
		if u == nil {
			return nil
		}
		return n.Do(func() error {
			if err := unix.Sethostname([]byte(u.Hostname)); err != nil {
				return fmt.Errorf("sethostname %q: %w", u.Hostname, err)
			}
			if err := unix.Setdomainname([]byte(u.Domainname)); err != nil {
				return fmt.Errorf("setdomainname %q: %w", u.Domainname, err)
			}
			return nil
		})
	},
}

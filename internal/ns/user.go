package ns

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/sys"
)

// A user namespace holds how its ids map to its parent's and whether its
// processes may call setgroups. It is made first, by the clone that
// creates the first task in it, and its maps are written by crsub, from
// the parent namespace, before that task runs or makes anything: the
// namespaces made afterwards by a task in it (by the same clone, by
// unshare in the task, or for its children) are owned by it, as they were
// (ckpt.Namespace.Owner). setgroups is written before gid_map, which the
// kernel requires for "deny". Only a user namespace whose parent is
// crsub's is supported: a deeper one is refused by name.
var userKind = &Kind{
	Name:      ckpt.NamespaceUser,
	CloneFlag: unix.CLONE_NEWUSER,
	Check:     checkUser,
	Dump: func(_ *DumpContext, n *ckpt.Namespace, pid int) error {
		if err := checkUser(pid); err != nil {
			return err
		}
		uids, err := procfs.ReadIDMaps(pid, "uid_map")
		if err != nil {
			return err
		}
		gids, err := procfs.ReadIDMaps(pid, "gid_map")
		if err != nil {
			return err
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/setgroups", pid))
		if err != nil {
			return err
		}
		setgroups := strings.TrimSpace(string(b))
		if setgroups != "allow" && setgroups != "deny" {
			return fmt.Errorf("setgroups %q: want allow or deny", setgroups)
		}
		n.User = &ckpt.UserNamespace{UidMap: idMaps(uids), GidMap: idMaps(gids), Setgroups: setgroups}
		return nil
	},
	Restore: func(_ *RestoreContext, n *Restored) error {
		u := n.Record.User
		if u == nil {
			return errors.New("its record has no uid and gid maps")
		}
		write := func(name, text string) error {
			path := fmt.Sprintf("/proc/%d/%s", n.Task, name)
			if err := os.WriteFile(path, []byte(text), 0); err != nil {
				return fmt.Errorf("writing %s (%q): %w", name, text, err)
			}
			return nil
		}
		if u.Setgroups == "deny" {
			if err := write("setgroups", "deny"); err != nil {
				return err
			}
		}
		if err := write("uid_map", procfs.FormatIDMaps(procMaps(u.UidMap))); err != nil {
			return err
		}
		return write("gid_map", procfs.FormatIDMaps(procMaps(u.GidMap)))
	},
}

// checkUser refuses a user namespace of process pid whose parent is not
// crsub's own user namespace, or whose maps are not written yet.
func checkUser(pid int) error {
	if err := checkUserParent(pid); err != nil {
		return err
	}
	for _, name := range []string{"uid_map", "gid_map"} {
		m, err := procfs.ReadIDMaps(pid, name)
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return fmt.Errorf("its %s is not written: its processes have no ids", name)
		}
	}
	return nil
}

// checkUserParent refuses a user namespace of process pid whose parent is
// not crsub's own user namespace.
func checkUserParent(pid int) error {
	own, err := Inode(os.Getpid(), ckpt.NamespaceUser)
	if err != nil {
		return err
	}
	parent, err := related(pid, ckpt.NamespaceUser, sys.NamespaceParent)
	if err != nil {
		return err
	}
	if parent != own {
		return fmt.Errorf("user namespaces nested more than one deep below crsub's are not supported yet (its parent is user namespace %d)", parent)
	}
	return nil
}

// Owner is the inode of the user namespace that owns namespace
// /proc/PID/ns/NAME of process pid (NAME may be pid_for_children).
func Owner(pid int, name string) (uint64, error) {
	return related(pid, name, sys.NamespaceOwner)
}

// related opens /proc/PID/ns/NAME and asks the kernel, with get, for the
// inode of a namespace related to it.
func related(pid int, name string, get func(fd int) (uint64, error)) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ino, err := get(int(f.Fd()))
	if err != nil {
		return 0, fmt.Errorf("%s namespace of pid %d: %w", name, pid, err)
	}
	return ino, nil
}

// CheckOwner checks that namespace n, made again, is owned by the user
// namespace owner (nil: crsub's), as it was.
func CheckOwner(n, owner *Restored) error {
	got, err := sys.NamespaceOwner(int(n.file.Fd()))
	if err != nil {
		return err
	}
	var want uint64
	if owner != nil {
		var st unix.Stat_t
		if err := unix.Fstat(int(owner.file.Fd()), &st); err != nil {
			return os.NewSyscallError("fstat", err)
		}
		want = st.Ino
	} else if want, err = Inode(os.Getpid(), ckpt.NamespaceUser); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("made owned by user namespace %d, not %s", got, ownerName(owner))
	}
	return nil
}

func ownerName(owner *Restored) string {
	if owner == nil {
		return "crsub's"
	}
	return owner.String()
}

func idMaps(m []procfs.IDMap) []ckpt.IDMap {
	out := make([]ckpt.IDMap, len(m))
	for i, l := range m {
		out[i] = ckpt.IDMap{Inside: l.Inside, Outside: l.Outside, Count: l.Count}
	}
	return out
}

func procMaps(m []ckpt.IDMap) []procfs.IDMap {
	out := make([]procfs.IDMap, len(m))
	for i, l := range m {
		out[i] = procfs.IDMap{Inside: l.Inside, Outside: l.Outside, Count: l.Count}
	}
	return out
}

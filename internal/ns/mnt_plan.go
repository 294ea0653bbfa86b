package ns

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A mount namespace's tree is recorded from the mountinfo of a process in
// it, read against crsub's own: a mount of a filesystem crsub's namespace
// also has mounted is external (recorded by the path crsub reaches it by,
// never copied); any other filesystem was made in the namespace and is
// made anew at restart, if it is of a kind crsub can make (mountKinds).

// MountError is a mount crsub cannot checkpoint, refused by name before
// anything is frozen.
type MountError struct {
	Path   string // mount point, in the namespace
	FSType string
	Reason string
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mount of %s at %s: not supported: %s", e.FSType, e.Path, e.Reason)
}

// mountKind is what crsub knows of a kind of filesystem it can make anew
// at restart.
type mountKind struct {
	// Files says its files are the image's to keep (a tmpfs): a
	// MountFiles record holds them.
	Files bool
	// In names the namespace of the first task whose view the filesystem
	// shows, which the thread making it joins first: "net" for sysfs,
	// "ipc" for mqueue, "cgroup" for cgroup hierarchies; "pid" for proc,
	// given with its pidns option; "" for none.
	In string
}

// mountKinds are the filesystems a restart can make anew.
var mountKinds = map[string]mountKind{
	"tmpfs":  {Files: true},
	"proc":   {In: ckpt.NamespacePid},
	"sysfs":  {In: ckpt.NamespaceNet},
	"devpts": {},
	// Registered formats belong to the user namespace, not to a mount.
	"binfmt_misc": {},
	"mqueue":      {In: ckpt.NamespaceIPC},
	"cgroup":      {In: ckpt.NamespaceCgroup},
	"cgroup2":     {In: ckpt.NamespaceCgroup},
}

// refusedKinds say why some filesystems made in a namespace are not.
var refusedKinds = map[string]string{
	"overlay":   "an overlay filesystem made in the namespace: its upper directory is not saved (mount it outside, where it is external)",
	"fuse":      "a FUSE filesystem: its server is a process of its own",
	"hugetlbfs": "files of hugetlbfs are not saved",
	"bpf":       "pinned BPF objects are not saved",
}

// mountFlags are the per-mount flags of mountinfo's mount options that a
// restart sets again, as mount(8) names them.
var mountFlags = []string{"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "nosymfollow"}

// planMounts records the tree of mounts inside (the mountinfo of a
// process of the namespace), against outside (crsub's). exists says
// whether outside's path shows what mount m of inside shows (the same
// file), or, m nil, whether the directory at outside's path exists; a
// candidate that does not is not used. A mount whose root was removed
// (mountinfo's "//deleted") is recorded with the root it had, which must
// be in a directory that exists.
func planMounts(inside, outside []procfs.Mount, exists func(hostPath string, m *procfs.Mount) bool) ([]ckpt.Mount, error) {
	ordered, err := treeOrder(inside)
	if err != nil {
		return nil, err
	}
	hostGroups := map[int]bool{}
	for i := range outside {
		p, err := outside[i].Propagation()
		if err != nil {
			return nil, err
		}
		if p.Shared != 0 {
			hostGroups[p.Shared] = true
		}
	}
	var out []ckpt.Mount
	for i, m := range ordered {
		p, err := m.Propagation()
		if err != nil {
			return nil, err
		}
		var deleted bool
		m.Root, deleted = strings.CutSuffix(m.Root, "//deleted")
		ex := exists
		if deleted && exists != nil {
			ex = func(host string, _ *procfs.Mount) bool { return exists(path.Dir(host), nil) }
		}
		rec := ckpt.Mount{ID: m.ID, Path: m.MountPoint, Dev: m.Dev, FSType: m.FSType, Source: m.Source, Root: m.Root,
			Flags: perMountFlags(m.Options), Options: m.SuperOptions, Shared: p.Shared, Master: p.Master, Unbindable: p.Unbindable, Deleted: deleted}
		if i > 0 {
			rec.Parent = m.ParentID
		}
		rec.External = externalPath(&m, outside, ex)
		if p.Shared != 0 && hostGroups[p.Shared] {
			if rec.External == "" {
				return nil, &MountError{Path: m.MountPoint, FSType: m.FSType, Reason: fmt.Sprintf("its peer group %d has mounts outside the namespace (shared with the host), but what it shows (%s) is not reachable there", p.Shared, m.Root)}
			}
			rec.SharedOutside = true
		}
		if rec.External == "" && mountedOutside(&m, outside) {
			return nil, &MountError{Path: m.MountPoint, FSType: m.FSType, Reason: fmt.Sprintf("its filesystem is mounted outside the namespace too, but what it shows (%s) is not reachable there (removed, or covered)", m.Root)}
		}
		if rec.External == "" {
			if why, ok := refusedKinds[m.FSType]; ok {
				return nil, &MountError{Path: m.MountPoint, FSType: m.FSType, Reason: why}
			}
			if _, ok := mountKinds[m.FSType]; !ok {
				return nil, &MountError{Path: m.MountPoint, FSType: m.FSType, Reason: "a filesystem made in the namespace that crsub cannot make anew (mount it outside, where it is external)"}
			}
		}
		out = append(out, rec)
	}
	if err := checkFilesRoots(out); err != nil {
		return nil, err
	}
	return out, nil
}

// treeOrder lists the mounts with each after its parent, otherwise in
// mountinfo's order (the order they were mounted in), the root first: the
// one mount whose parent is not in the list.
func treeOrder(ms []procfs.Mount) ([]procfs.Mount, error) {
	ids := map[int]bool{}
	for _, m := range ms {
		if ids[m.ID] {
			return nil, fmt.Errorf("mount id %d listed twice", m.ID)
		}
		ids[m.ID] = true
	}
	var roots []int
	for _, m := range ms {
		if !ids[m.ParentID] || m.ParentID == m.ID {
			roots = append(roots, m.ID)
		}
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("mountinfo has %d mounts without a parent in it (%v), want one root", len(roots), roots)
	}
	placed := map[int]bool{}
	var out []procfs.Mount
	for len(out) < len(ms) {
		n := len(out)
		for _, m := range ms {
			if !placed[m.ID] && (m.ID == roots[0] || placed[m.ParentID]) {
				placed[m.ID] = true
				out = append(out, m)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("mountinfo's mounts do not form a tree from mount %d", roots[0])
		}
	}
	return out, nil
}

// perMountFlags picks the per-mount flags a restart sets from mountinfo's
// mount options ("rw" is the absence of "ro", strictatime that of the
// other atime flags).
func perMountFlags(options string) []string {
	var out []string
	for _, o := range strings.Split(options, ",") {
		if slices.Contains(mountFlags, o) {
			out = append(out, o)
		}
	}
	return out
}

// externalPath is where crsub's namespace shows what m shows, if it has
// m's filesystem mounted: under the mount of it whose root is the
// shortest that holds m's root (the filesystem's own mount, rather than a
// bind mount of a part of it that may come and go), and that exists says
// is right.
func externalPath(m *procfs.Mount, outside []procfs.Mount, exists func(string, *procfs.Mount) bool) string {
	var cands []*procfs.Mount
	for i := range outside {
		o := &outside[i]
		if o.Dev == m.Dev && within(m.Root, o.Root) {
			cands = append(cands, o)
		}
	}
	slices.SortStableFunc(cands, func(a, b *procfs.Mount) int { return len(a.Root) - len(b.Root) })
	for _, o := range cands {
		rel := strings.TrimPrefix(strings.TrimPrefix(m.Root, o.Root), "/")
		p := path.Join(o.MountPoint, rel)
		if exists == nil || exists(p, m) {
			return p
		}
	}
	return ""
}

// mountedOutside says whether crsub's namespace has m's filesystem
// mounted.
func mountedOutside(m *procfs.Mount, outside []procfs.Mount) bool {
	for i := range outside {
		if outside[i].Dev == m.Dev {
			return true
		}
	}
	return false
}

// within says whether path p is dir or below it.
func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// checkFilesRoots refuses a filesystem whose files the image keeps (a
// tmpfs made in the namespace) when no one of its mounts shows all that
// the others show: they are saved from that one.
func checkFilesRoots(ms []ckpt.Mount) error {
	for _, m := range ms {
		if m.External != "" || !mountKinds[m.FSType].Files {
			continue
		}
		top := filesMount(ms, m.Dev)
		if !within(m.Root, top.Root) {
			return &MountError{Path: m.Path, FSType: m.FSType, Reason: fmt.Sprintf("its filesystem is mounted only in parts (%s at %s, %s at %s)", top.Root, top.Path, m.Root, m.Path)}
		}
	}
	return nil
}

// filesMount is the mount of filesystem dev (made in the namespace) its
// files are saved from: the one showing most of it.
func filesMount(ms []ckpt.Mount, dev uint64) *ckpt.Mount {
	var top *ckpt.Mount
	for i := range ms {
		m := &ms[i]
		if m.Dev == dev && m.External == "" && (top == nil || len(m.Root) < len(top.Root)) {
			top = m
		}
	}
	return top
}

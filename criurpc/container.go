package criurpc

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// A container runtime restores a container into what it made anew for it:
// a root filesystem mounted where it chose (root), the files it
// bind-mounts in at their new places (ext_mnt, keyed by mount point), its
// cgroups (cg_root), and the namespaces it made itself and joined by path
// (inherit_fd extRootNetNS, join_ns). These become the restart's Root,
// MountMap and Namespaces; what the image records of the rest (the mount
// tree, the namespaces the container made) is restored as it was.

// suppliedNamespace is a namespace the runtime gives: an fd it passed
// (inherit_fd) or a namespace file (join_ns).
type suppliedNamespace struct {
	field, kind, path string
}

// supplyNamespaces puts the tree into the namespaces the runtime gives in
// place of the image's of their kinds. One of crsub's own namespaces is
// accepted for a kind the image has none of (the tree was in crsub's);
// another is refused then, as is a pid or mount namespace (the engine
// makes those from the image).
func supplyNamespaces(opts *restart.Options, inv *ckpt.Inventory, given []suppliedNamespace) error {
	has := map[string]bool{}
	for _, n := range inv.Namespaces {
		has[n.Namespace.Kind] = true
	}
	for _, g := range given {
		own, err := sameNamespaceFile(g.kind, g.path)
		if err != nil {
			return &RefusedError{Field: g.field, Reason: err.Error()}
		}
		switch {
		case !has[g.kind] && own:
			continue
		case !has[g.kind]:
			return &RefusedError{Field: g.field, Reason: fmt.Sprintf("%s namespace %s: the image's tree was in crsub's %s namespace, and is restored there", g.kind, g.path, g.kind)}
		case g.kind == ckpt.NamespacePid || g.kind == ckpt.NamespaceMnt:
			return &RefusedError{Field: g.field, Reason: fmt.Sprintf("%s namespace %s: crsub makes the tree's %s namespace from the image; it cannot restore into an existing one", g.kind, g.path, g.kind)}
		}
		if opts.Namespaces == nil {
			opts.Namespaces = map[string]substitute.Namespace{}
		}
		opts.Namespaces[g.kind] = substitute.Namespace{Path: g.path}
		// The runtime configures the network namespace it gives: podman
		// restores a container under a new name with a new address.
		opts.NetworkAsGiven = opts.NetworkAsGiven || g.kind == ckpt.NamespaceNet
	}
	return nil
}

// sameNamespaceFile says whether the namespace file path is crsub's own
// namespace of kind.
func sameNamespaceFile(kind, path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	own, err := os.Stat("/proc/self/ns/" + kind)
	if err != nil {
		return false, fmt.Errorf("namespace kind %q: %w", kind, err)
	}
	return os.SameFile(st, own), nil
}

// mountNamespace is the image's mount namespace, nil if its tree was in
// crsub's.
func mountNamespace(inv *ckpt.Inventory) *ckpt.MountNamespace {
	for _, n := range inv.Namespaces {
		if n.Namespace.Kind == ckpt.NamespaceMnt && n.Namespace.Mnt != nil {
			return n.Namespace.Mnt
		}
	}
	return nil
}

// containerRoot sets the root filesystem a runtime mounted for the tree.
// crsub's own root asks for nothing; another needs an image whose mount
// namespace had its root from outside (a container's).
func containerRoot(opts *restart.Options, inv *ckpt.Inventory, root string) error {
	if root == "" {
		return nil
	}
	own, err := sameFile(root, "/")
	if err != nil {
		return &RefusedError{Field: "root", Reason: err.Error()}
	}
	if own {
		return nil
	}
	mnt := mountNamespace(inv)
	if mnt == nil || len(mnt.Mounts) == 0 {
		return &RefusedError{Field: "root", Reason: fmt.Sprintf("%s is not crsub's root, and the image's tree was in crsub's mount namespace: it is restored there", root)}
	}
	if mnt.Mounts[0].External == "" {
		return &RefusedError{Field: "root", Reason: fmt.Sprintf("%s: the image's root is a %s made in its mount namespace, restored from the image", root, mnt.Mounts[0].FSType)}
	}
	opts.Root = root
	return nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// mountMap moves the image's external mounts to where the runtime has
// their sources now: an ext_mnt entry names a mount by its mount point,
// and a cgroup hierarchy's mount follows the hierarchy's cg_root (runc
// names its own cgroup for those). An entry for a mount point the image
// has no external mount at is logged and left (runc names every bind
// mount and device of the container's configuration, as CRIU ignores
// those it has no use for).
func mountMap(inv *ckpt.Inventory, ext []ExtMount, cgroupRoots map[string]string, log *slog.Logger) map[string]string {
	mnt := mountNamespace(inv)
	if mnt == nil {
		for _, e := range ext {
			log.Info("ext_mnt: the image's tree was in crsub's mount namespace", "key", e.Key)
		}
		return nil
	}
	m := map[string]string{}
	byPath := map[string]ckpt.Mount{}
	for i, mt := range mnt.Mounts {
		if i == 0 || mt.External == "" {
			continue // the root is the root entry's
		}
		byPath[mt.Path] = mt
		if to := cgroupSource(mt, cgroupRoots); to != "" && to != mt.External {
			m[mt.External] = to
		}
	}
	for _, e := range ext {
		mt, ok := byPath[e.Key]
		switch {
		case !ok:
			log.Info("ext_mnt matches no external mount of the image", "key", e.Key)
		case isCgroup(mt):
			// Its hierarchy's cg_root says where it is now.
		case e.Val != mt.External:
			m[mt.External] = e.Val
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func isCgroup(mt ckpt.Mount) bool { return mt.FSType == "cgroup" || mt.FSType == "cgroup2" }

// cgroupSource is where a cgroup mount's cgroup is at restore, by its
// hierarchy's entry in cgroupRoots: the external path with the recorded
// cgroup (the mount's root) replaced. "" if it does not move.
func cgroupSource(mt ckpt.Mount, cgroupRoots map[string]string) string {
	if !isCgroup(mt) || len(cgroupRoots) == 0 || mt.Root == "/" || !strings.HasSuffix(mt.External, mt.Root) {
		return ""
	}
	base := strings.TrimSuffix(mt.External, mt.Root)
	if mt.FSType == "cgroup2" {
		if p, ok := cgroupRoots[cgroup.Unified]; ok {
			return base + p
		}
	} else {
		for _, o := range strings.Split(mt.Options, ",") {
			if p, ok := cgroupRoots[o]; ok {
				return base + p
			}
		}
	}
	if p, ok := cgroupRoots[""]; ok {
		return base + p
	}
	return ""
}

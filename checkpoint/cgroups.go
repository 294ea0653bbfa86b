package checkpoint

import (
	"slices"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/internal/procfs"
)

// collectCgroups records the cgroups a restart makes again, for each
// hierarchy the tree's tasks are in: the tasks' own and every cgroup below
// them, empty ones too, or below the root Options.CgroupRoots gives the
// hierarchy. The root cgroup of a hierarchy is the whole system's: what is
// below it is recorded only when asked for.
func (s *session) collectCgroups() ([]ckpt.Cgroups, error) {
	var order []string
	paths := map[string][]string{}
	add := func(cgs []ckpt.Cgroup) {
		for _, c := range cgs {
			if _, seen := paths[c.Controllers]; !seen {
				order = append(order, c.Controllers)
			}
			if !slices.Contains(paths[c.Controllers], c.Path) {
				paths[c.Controllers] = append(paths[c.Controllers], c.Path)
			}
		}
	}
	for _, p := range s.procs {
		add(p.state.process.Cgroups)
		for _, th := range p.state.threads {
			add(th.Cgroups)
		}
	}
	if len(order) == 0 {
		return nil, nil
	}
	var out []ckpt.Cgroups
	for _, controllers := range order {
		asked, ok := cgroup.RootFor(s.opts.CgroupRoots, controllers)
		roots := cgroupRoots(paths[controllers], asked, ok)
		rec := ckpt.Cgroups{Controllers: controllers, Roots: roots}
		for _, r := range roots {
			dirs, err := s.hierarchies.Read(controllers, r, r != "/" || (ok && r == asked))
			if err != nil {
				return nil, err
			}
			rec.Dirs = append(rec.Dirs, dirs...)
		}
		out = append(out, rec)
	}
	return out, nil
}

// mountCgroups mounts the hierarchies the root process is in, for
// collectCgroups to read while the tree is frozen. One that cannot be
// mounted is tried again then, and its error reported.
func (s *session) mountCgroups() {
	cgs, err := procfs.ReadCgroups(s.root, s.root)
	if err != nil {
		return
	}
	for _, c := range cgs {
		_ = s.hierarchies.Prepare(c.Controllers)
	}
}

// unmountCgroups unmounts what mountCgroups and collectCgroups mounted.
func (s *session) unmountCgroups() {
	if err := s.hierarchies.Close(); err != nil {
		s.log.Warn("cannot unmount the cgroup hierarchies read", "err", err)
	}
}

// cgroupRoots are the cgroups of paths below no other one of them, with
// asked (if ok) in place of those below it.
func cgroupRoots(paths []string, asked string, ok bool) []string {
	var roots []string
	if ok {
		roots = append(roots, asked)
	}
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	for _, p := range sorted {
		covered := false
		for _, r := range roots {
			covered = covered || cgroup.Under(p, r)
		}
		if !covered {
			roots = append(roots, p)
		}
	}
	return roots
}

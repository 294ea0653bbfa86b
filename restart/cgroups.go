package restart

import (
	"fmt"
	"strings"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/cgroup"
)

// CgroupMode says what a restart does with the cgroups the image records
// (the tasks' own, and the ones below them, with their owners, modes and
// settings) and whether the tasks join them.
type CgroupMode int

const (
	// CgroupsCreate moves the tasks into their cgroups, making the
	// missing ones, with their owners, modes and settings; the cgroups
	// that exist keep their settings, and get their owners and modes.
	CgroupsCreate CgroupMode = iota
	// CgroupsIgnore leaves the tasks in the cgroups of the restarting
	// process, and makes or changes no cgroup.
	CgroupsIgnore
	// CgroupsJoin moves the tasks into their cgroups, which must exist,
	// and changes none.
	CgroupsJoin
	// CgroupsSettings is CgroupsJoin, and the cgroups get their recorded
	// owners, modes and settings.
	CgroupsSettings
	// CgroupsFull is CgroupsCreate, and the cgroups that exist get their
	// settings too.
	CgroupsFull
	// CgroupsStrict is CgroupsFull, but a recorded cgroup that exists
	// already fails the restart.
	CgroupsStrict
)

var cgroupModeNames = []string{"create", "ignore", "join", "settings", "full", "strict"}

func (m CgroupMode) String() string {
	if int(m) < len(cgroupModeNames) && m >= 0 {
		return cgroupModeNames[m]
	}
	return fmt.Sprintf("CgroupMode(%d)", int(m))
}

// ParseCgroupMode parses a mode by its name: create, ignore, join,
// settings, full or strict.
func ParseCgroupMode(s string) (CgroupMode, error) {
	for i, n := range cgroupModeNames {
		if n == s {
			return CgroupMode(i), nil
		}
	}
	return 0, fmt.Errorf("cgroup mode %q: want one of %s", s, strings.Join(cgroupModeNames, ", "))
}

// policy is what Hierarchies.Make does in mode m.
func (m CgroupMode) policy() cgroup.Policy {
	switch m {
	case CgroupsJoin:
		return cgroup.Policy{}
	case CgroupsSettings:
		return cgroup.Policy{OwnExisting: true, SetExisting: true}
	case CgroupsFull:
		return cgroup.Policy{Create: true, OwnExisting: true, SetExisting: true}
	case CgroupsStrict:
		return cgroup.Policy{Create: true, FailExisting: true}
	}
	return cgroup.Policy{Create: true, OwnExisting: true}
}

// makeCgroups makes one hierarchy's recorded cgroups as the mode says,
// under the new root Options.CgroupRoots gives the hierarchy, if any:
// each of the record's roots is put there, with what is below it.
func (s *restorer) makeCgroups(rec *ckpt.Record) error {
	var cg ckpt.Cgroups
	if err := rec.Decode(&cg); err != nil {
		return err
	}
	if s.opts.Cgroups == CgroupsIgnore {
		return nil
	}
	if s.cgroupRoots == nil {
		s.cgroupRoots = map[string][]string{}
	}
	s.cgroupRoots[cg.Controllers] = cg.Roots
	p := s.opts.Cgroups.policy()
	p.Warn = func(msg string, args ...any) { s.log.Warn(msg, args...) }
	return s.cgroups.Make(cg.Controllers, cg.Dirs, func(path string) string { return s.cgroupPath(cg.Controllers, path) }, p)
}

// cgroupPath is where recorded cgroup path of a hierarchy is at restart:
// under the new root given for the hierarchy, in place of the recorded
// root it is under (the cgroup itself, in an image that records none).
func (s *restorer) cgroupPath(controllers, path string) string {
	newRoot, ok := cgroup.RootFor(s.opts.CgroupRoots, controllers)
	if !ok {
		return path
	}
	from, found := "", false
	for _, r := range s.cgroupRoots[controllers] {
		if cgroup.Under(path, r) && (!found || len(r) > len(from)) {
			from, found = r, true
		}
	}
	if !found {
		from = path
	}
	rest := strings.TrimPrefix(path, from)
	if from == "/" {
		rest = path
	}
	if rest == "" || rest == "/" {
		return newRoot
	}
	return strings.TrimSuffix(newRoot, "/") + rest
}

// removeAbandonedCgroups lists the cgroups this restart makes in the state
// directory, and first removes those that killed restarts listed there
// and left, saying so.
func (s *restorer) removeAbandonedCgroups() {
	if s.opts.StateDir == "" || s.opts.Cgroups == CgroupsIgnore {
		return
	}
	s.cgroups.Journal = s.opts.StateDir
	done, err := s.cgroups.RemoveAbandoned()
	for _, a := range done {
		if a.Removed {
			s.log.Warn("removed a cgroup a killed restart had made", "hierarchy", hierarchyName(a.Hierarchy), "cgroup", a.Path)
		} else {
			s.log.Warn("kept a cgroup a killed restart had made", "hierarchy", hierarchyName(a.Hierarchy), "cgroup", a.Path, "why", a.Kept)
		}
	}
	if err != nil {
		s.log.Warn("cannot remove the cgroups killed restarts made", "dir", s.opts.StateDir, "err", err)
	}
}

// hierarchyName names a hierarchy as --cgroup-root does.
func hierarchyName(controllers string) string {
	if controllers == "" {
		return cgroup.Unified
	}
	return controllers
}

// Package cgroup reads and makes cgroups of the v1 hierarchies and the
// unified (v2) one, with their owners, modes and settings, and moves tasks
// into them, reaching each hierarchy through a mount of its own.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/journal"
)

// Hierarchies reaches the cgroup hierarchies tasks are moved in. Each is
// mounted once when first needed (it need not be mounted anywhere else,
// and a mount of the same controllers is the same hierarchy), as a mount
// attached nowhere (fsmount) and reached through its fd: nothing is left
// mounted if crsub dies, since the mount goes with the fd. Close closes
// them. The cgroups it creates are kept in a list, so that RemoveCreated
// can take them away again.
type Hierarchies struct {
	// Journal, if set, is the directory where the cgroups about to be
	// made are listed, so that the next Hierarchies with the same Journal
	// removes them should this one's process die (journal.go).
	Journal string
	journal *journal.File
	mounts  map[string]mounted // by controllers ("" for the unified hierarchy)
	created []string           // cgroup directories made, parents first
}

// mounted is a hierarchy's detached mount: its fd, and the path that
// reaches it (/proc/self/fd/N).
type mounted struct {
	fd  int
	dir string
}

// Move puts thread tid (a whole process with its threads unless thread)
// in cgroup path of the hierarchy named by controllers, as
// /proc/PID/cgroup names them ("cpu,cpuacct", "name=systemd", "" for the
// unified hierarchy), creating the cgroup if it is missing.
func (h *Hierarchies) Move(controllers, path string, tid int, thread bool) error {
	root, err := h.mount(controllers)
	if err != nil {
		return err
	}
	clean, err := cleanPath(path)
	if err != nil {
		return err
	}
	if err := h.mkdirAll(controllers, root, clean); err != nil {
		return err
	}
	file := "cgroup.procs"
	switch {
	case thread && controllers == "":
		file = "cgroup.threads"
	case thread:
		file = "tasks"
	}
	target := filepath.Join(root, clean, file)
	if err := os.WriteFile(target, []byte(strconv.Itoa(tid)), 0); err != nil {
		return fmt.Errorf("cgroup %s of hierarchy %q: %w", path, controllers, err)
	}
	return nil
}

// mkdirAll creates cgroup path under root and the cgroups above it that
// are missing, remembering each one it made. A new v1 cpuset cgroup has
// no CPUs and memory nodes, and takes no task: it gets its parent's.
func (h *Hierarchies) mkdirAll(controllers, root, path string) error {
	dir := root
	for _, elem := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if elem == "" {
			continue
		}
		dir = filepath.Join(dir, elem)
		if _, err := os.Lstat(dir); err == nil {
			continue
		}
		if h.Journal != "" {
			if h.journal == nil {
				j, err := journal.Create(h.Journal, journalSuffix)
				if err != nil {
					return fmt.Errorf("listing the cgroups made: %w", err)
				}
				h.journal = j
			}
			if err := h.journal.Append(journalEntry{Controllers: controllers, Path: strings.TrimPrefix(dir, root)}); err != nil {
				return err
			}
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil && h.journal != nil {
			if merr := h.mark(dir); merr != nil {
				unix.Rmdir(dir)
				return merr
			}
		}
		switch {
		case err == nil:
			h.created = append(h.created, dir)
			if hasCpuset(controllers) {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
					if err == nil {
						err = os.WriteFile(filepath.Join(dir, f), b, 0)
					}
					if err != nil {
						return fmt.Errorf("cgroup %s: %w", strings.TrimPrefix(dir, root), err)
					}
				}
			}
		case errors.Is(err, os.ErrExist):
		default:
			return fmt.Errorf("creating cgroup %s: %w", strings.TrimPrefix(dir, root), err)
		}
	}
	return nil
}

// Prepare mounts the hierarchy named by controllers now, ahead of the
// calls that use it.
func (h *Hierarchies) Prepare(controllers string) error {
	_, err := h.mount(controllers)
	return err
}

// mount gives the directory of the hierarchy named by controllers,
// mounting it the first time.
func (h *Hierarchies) mount(controllers string) (string, error) {
	if m, ok := h.mounts[controllers]; ok {
		return m.dir, nil
	}
	fd, err := mountHierarchy(controllers)
	if err != nil {
		return "", fmt.Errorf("mounting the cgroup hierarchy %q: %w", controllers, err)
	}
	if h.mounts == nil {
		h.mounts = map[string]mounted{}
	}
	m := mounted{fd: fd, dir: "/proc/self/fd/" + strconv.Itoa(fd)}
	h.mounts[controllers] = m
	return m.dir, nil
}

// mountHierarchy makes a detached mount of the hierarchy named by
// controllers (cgroup2 for ""; v1 options as mount(8) would take them)
// and returns its fd. A v1 hierarchy mounted nowhere else is destroyed,
// in the background, once its last mount goes: making it again meanwhile
// fails with EBUSY (mount(2) restarts itself then; fsconfig does not), so
// that is waited out.
func mountHierarchy(controllers string) (int, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		fd, err := mountHierarchyOnce(controllers)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fd, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mountHierarchyOnce(controllers string) (int, error) {
	fstype := "cgroup2"
	if controllers != "" {
		fstype = "cgroup"
	}
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsopen", err)
	}
	defer unix.Close(fsfd)
	if controllers != "" && !hasController(controllers) {
		// A named hierarchy without controllers: "none" says so.
		if err := unix.FsconfigSetFlag(fsfd, "none"); err != nil {
			return -1, os.NewSyscallError("fsconfig none", err)
		}
	}
	for _, opt := range strings.Split(controllers, ",") {
		if opt == "" {
			continue
		}
		if name, ok := strings.CutPrefix(opt, "name="); ok {
			err = unix.FsconfigSetString(fsfd, "name", name)
		} else {
			err = unix.FsconfigSetFlag(fsfd, opt)
		}
		if err != nil {
			return -1, os.NewSyscallError("fsconfig "+opt, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, os.NewSyscallError("fsconfig create", err)
	}
	fd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("fsmount", err)
	}
	return fd, nil
}

// hasCpuset says whether a v1 hierarchy has the cpuset controller.
func hasCpuset(controllers string) bool {
	for _, c := range strings.Split(controllers, ",") {
		if c == "cpuset" {
			return true
		}
	}
	return false
}

// hasController says whether a hierarchy's name lists a controller, not
// only a name= option.
func hasController(controllers string) bool {
	for _, c := range strings.Split(controllers, ",") {
		if c != "" && !strings.HasPrefix(c, "name=") {
			return true
		}
	}
	return false
}

// RemoveCreated removes the cgroups Move created, deepest first. A cgroup
// is busy for a moment after its last task was killed: each is retried
// for up to a second.
func (h *Hierarchies) RemoveCreated() error {
	var errs []error
	for i := len(h.created) - 1; i >= 0; i-- {
		dir := h.created[i]
		deadline := time.Now().Add(time.Second)
		for {
			err := unix.Rmdir(dir)
			if err == unix.EBUSY && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if err != nil && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, os.NewSyscallError("rmdir", err)))
			}
			break
		}
	}
	h.created = nil
	if len(errs) == 0 {
		// Nothing of what the journal lists is left.
		if err := h.Keep(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close lets go of the hierarchies' mounts.
func (h *Hierarchies) Close() error {
	var errs []error
	for controllers, m := range h.mounts {
		if err := unix.Close(m.fd); err != nil {
			errs = append(errs, fmt.Errorf("closing the cgroup hierarchy %q: %w", controllers, os.NewSyscallError("close", err)))
		}
	}
	h.mounts = nil
	if h.journal != nil {
		// Neither kept nor all removed: left for the next to remove.
		h.journal.Close()
		h.journal = nil
	}
	return errors.Join(errs...)
}

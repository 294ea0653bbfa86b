// Package cgroup moves tasks into cgroups of the v1 hierarchies and the
// unified (v2) one, reaching each hierarchy through a mount of its own.
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
)

// Hierarchies reaches the cgroup hierarchies tasks are moved in. Each is
// mounted once when first needed (it need not be mounted anywhere else,
// and a mount of the same controllers is the same hierarchy), as a mount
// attached nowhere that only an fd of crsub holds (fsmount): it goes with
// the fd, at Close or when crsub dies, killed or not. The cgroups it
// creates are kept in a list, so that RemoveCreated can take them away
// again.
type Hierarchies struct {
	mounts  map[string]*os.File // by controllers ("" for the unified hierarchy)
	created []string            // cgroup directories made, parents first
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
	clean := filepath.Clean("/" + path)
	if clean != path || strings.Contains(path, "\x00") {
		return fmt.Errorf("cgroup %s: not a clean absolute path", path)
	}
	if err := h.mkdirAll(root, clean, hasCpuset(controllers)); err != nil {
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
func (h *Hierarchies) mkdirAll(root, path string, cpuset bool) error {
	dir := root
	for _, elem := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if elem == "" {
			continue
		}
		dir = filepath.Join(dir, elem)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			h.created = append(h.created, dir)
			if cpuset {
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

// mount gives a path to the root of the hierarchy named by controllers,
// mounting it the first time.
func (h *Hierarchies) mount(controllers string) (string, error) {
	if m, ok := h.mounts[controllers]; ok {
		return rootOf(m), nil
	}
	fstype, opts := "cgroup2", ""
	if controllers != "" {
		fstype, opts = "cgroup", controllers
		if !hasController(controllers) {
			// A named hierarchy without controllers: "none" says so.
			opts = "none," + controllers
		}
	}
	m, err := mountDetached(fstype, opts)
	if err != nil {
		return "", fmt.Errorf("mounting the cgroup hierarchy %q: %w", controllers, err)
	}
	if h.mounts == nil {
		h.mounts = map[string]*os.File{}
	}
	h.mounts[controllers] = m
	return rootOf(m), nil
}

// rootOf is a path to the root of a mount an fd holds.
func rootOf(m *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(m.Fd())) }

// mountDetached mounts a filesystem of type fstype with mount(8)-style
// options (flags and key=value, comma-separated) nowhere: the fd returned
// holds it, nosuid, nodev and noexec.
func mountDetached(fstype, opts string) (*os.File, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("fsopen", err)
	}
	defer unix.Close(fs)
	for _, o := range strings.Split(opts, ",") {
		key, value, hasValue := strings.Cut(o, "=")
		switch {
		case o == "":
			continue
		case hasValue:
			err = unix.FsconfigSetString(fs, key, value)
		default:
			err = unix.FsconfigSetFlag(fs, key)
		}
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", o, os.NewSyscallError("fsconfig", err))
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, os.NewSyscallError("fsconfig", err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("fsmount", err)
	}
	return os.NewFile(uintptr(m), fstype), nil
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
	return errors.Join(errs...)
}

// Close lets go of the hierarchies Move mounted.
func (h *Hierarchies) Close() error {
	var errs []error
	for _, m := range h.mounts {
		errs = append(errs, m.Close())
	}
	h.mounts = nil
	return errors.Join(errs...)
}

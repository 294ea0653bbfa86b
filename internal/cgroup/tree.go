package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// Read records cgroup path of the hierarchy named by controllers and, if
// below, every cgroup under it, parents first: each directory's owner and
// mode, its settings' values and owners.
func (h *Hierarchies) Read(controllers, path string, below bool) ([]ckpt.CgroupDir, error) {
	root, err := h.mount(controllers)
	if err != nil {
		return nil, err
	}
	clean, err := cleanPath(path)
	if err != nil {
		return nil, err
	}
	var dirs []ckpt.CgroupDir
	var walk func(rel string) error
	walk = func(rel string) error {
		dir := filepath.Join(root, rel)
		d, err := readDir(controllers, dir, rel)
		if err != nil {
			return err
		}
		dirs = append(dirs, d)
		if !below {
			return nil
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cgroup %s of hierarchy %q: %w", rel, controllers, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				if err := walk(filepath.Join(rel, e.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(clean); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s of hierarchy %q: no such cgroup", clean, controllers)
		}
		return nil, err
	}
	return dirs, nil
}

// readDir records the cgroup in directory dir (path rel in its hierarchy).
// The root cgroup has no settings to record: a restart leaves it alone.
func readDir(controllers, dir, rel string) (ckpt.CgroupDir, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ckpt.CgroupDir{}, fmt.Errorf("cgroup %s of hierarchy %q: %w", rel, controllers, &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	d := ckpt.CgroupDir{Path: rel, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
	if rel == "/" {
		return d, nil
	}
	for _, s := range settingsOf(controllers) {
		file := filepath.Join(dir, s.name)
		if err := unix.Stat(file, &st); err != nil {
			continue // not on this kernel, or the controller is not enabled here
		}
		f := ckpt.CgroupFile{Name: s.name, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
		if !s.ownerOnly {
			b, err := os.ReadFile(file)
			if err != nil {
				return ckpt.CgroupDir{}, fmt.Errorf("cgroup %s of hierarchy %q: %w", rel, controllers, err)
			}
			v := normalize(s.name, string(b))
			f.Value = &v
		}
		d.Files = append(d.Files, f)
	}
	return d, nil
}

// Policy says what Make does with a recorded cgroup, depending on whether
// it exists.
type Policy struct {
	// Create makes a missing cgroup, with its owner, mode and settings;
	// without it, a missing cgroup is an error.
	Create bool
	// FailExisting makes a cgroup that exists already an error.
	FailExisting bool
	// OwnExisting gives a cgroup that exists its recorded owner and mode,
	// SetExisting its settings (but those only a new cgroup takes).
	OwnExisting, SetExisting bool
	// Warn hears of what is left undone: a setting this kernel lacks.
	Warn func(msg string, args ...any)
}

// Make gives the hierarchy named by controllers the cgroups of dirs
// (parents first), each at the path place gives it, as p says. The root
// cgroup is left alone. Cgroups it makes are removed by RemoveCreated.
func (h *Hierarchies) Make(controllers string, dirs []ckpt.CgroupDir, place func(string) string, p Policy) error {
	root, err := h.mount(controllers)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		path, err := cleanPath(place(d.Path))
		if err != nil {
			return err
		}
		if path == "/" {
			continue
		}
		dir := filepath.Join(root, path)
		_, err = os.Lstat(dir)
		exists := err == nil
		name := fmt.Sprintf("cgroup %s of hierarchy %q", path, controllers)
		switch {
		case exists && p.FailExisting:
			return fmt.Errorf("%s exists already", name)
		case !exists && !p.Create:
			return fmt.Errorf("%s does not exist", name)
		case !exists:
			if err := h.mkdirAll(controllers, root, path); err != nil {
				return err
			}
		}
		if !exists || p.OwnExisting {
			if err := own(dir, d.Mode, d.UID, d.GID); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if exists && !p.SetExisting {
			continue
		}
		for _, f := range d.Files {
			if err := writeFile(controllers, dir, f, !exists, p.Warn); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// writeFile writes setting f back into the cgroup in dir (created says it
// was just made) and gives the file its owner and mode.
func writeFile(controllers, dir string, f ckpt.CgroupFile, created bool, warn func(string, ...any)) error {
	s, known := findSetting(controllers, f.Name)
	if !known || (s.atCreation && !created) {
		return nil
	}
	file := filepath.Join(dir, f.Name)
	if _, err := os.Lstat(file); err != nil {
		if warn != nil {
			warn("cgroup setting not restored: no such file here", "file", file)
		}
		return nil
	}
	if f.Value != nil && !unchanged(f.Name, *f.Value) {
		if err := writeSetting(dir, s, *f.Value); err != nil {
			return err
		}
	}
	return own(file, f.Mode, f.UID, f.GID)
}

// writeSetting writes value into setting s of the cgroup in dir, as the
// kernel takes it.
func writeSetting(dir string, s setting, value string) error {
	write := func(name, v string) error {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0); err != nil {
			return fmt.Errorf("writing %q to %s: %w", v, name, unwrapPath(err))
		}
		return nil
	}
	switch s.name {
	case "devices.list":
		// Only the list can be read; it is made again by denying all,
		// then allowing each rule.
		if err := write("devices.deny", "a"); err != nil {
			return err
		}
		for _, line := range strings.Split(value, "\n") {
			if line == "" {
				continue
			}
			if err := write("devices.allow", line); err != nil {
				return err
			}
		}
		return nil
	case "cgroup.subtree_control":
		var enable []string
		for _, c := range strings.Fields(value) {
			enable = append(enable, "+"+c)
		}
		if len(enable) == 0 {
			return nil
		}
		return write(s.name, strings.Join(enable, " "))
	}
	if s.lines {
		for _, line := range strings.Split(value, "\n") {
			if err := write(s.name, line); err != nil && !s.skipFailed {
				return err
			}
		}
		return nil
	}
	err := write(s.name, value)
	if s.name == "memory.kmem.limit_in_bytes" && errors.Is(err, unix.EOPNOTSUPP) {
		return nil // deprecated: Linux 6.1 and later refuse every value
	}
	return err
}

// own gives path its owner and permission bits, where they differ.
func own(path string, mode, uid, gid uint32) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Uid != uid || st.Gid != gid {
		if err := unix.Chown(path, int(uid), int(gid)); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	if st.Mode&0o7777 != mode {
		if err := unix.Chmod(path, mode); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	return nil
}

// cleanPath refuses a cgroup path that is not clean and absolute.
func cleanPath(path string) (string, error) {
	if clean := filepath.Clean("/" + path); clean != path || strings.Contains(path, "\x00") {
		return "", fmt.Errorf("cgroup %q: not a clean absolute path", path)
	}
	return path, nil
}

// unwrapPath drops an *os.PathError's path: the caller names the file.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Unified names the unified (v2) hierarchy where a hierarchy is named by
// one of its controllers ("cpu", "name=systemd"): it has none.
const Unified = "unified"

// RootFor picks, among roots by hierarchy name (a controller or name= of
// a v1 hierarchy, Unified, or "" for every hierarchy not named), the one
// for the hierarchy named by controllers as /proc/PID/cgroup names it.
func RootFor(roots map[string]string, controllers string) (string, bool) {
	for name, root := range roots {
		if name == "" {
			continue
		}
		if name == Unified && controllers == "" {
			return root, true
		}
		for _, c := range strings.Split(controllers, ",") {
			if c != "" && c == name {
				return root, true
			}
		}
	}
	root, ok := roots[""]
	return root, ok
}

// ParseRoot parses [HIERARCHY:]/PATH, as --cgroup-root takes it: the
// hierarchy ("" for all) and a clean absolute path.
func ParseRoot(s string) (hierarchy, path string, err error) {
	path = s
	if i := strings.Index(s, ":/"); i >= 0 && !strings.HasPrefix(s, "/") {
		hierarchy, path = s[:i], s[i+1:]
	}
	if _, err := cleanPath(path); err != nil || strings.Contains(hierarchy, ",") {
		return "", "", fmt.Errorf("%q: want [HIERARCHY:]/PATH, HIERARCHY a controller (cpu, name=systemd) or %s, PATH clean and absolute", s, Unified)
	}
	return hierarchy, path, nil
}

// Under says whether cgroup path is root or below it.
func Under(path, root string) bool {
	return root == "/" || path == root || strings.HasPrefix(path, root+"/")
}

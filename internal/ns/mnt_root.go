package ns

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crsub/crsub/ckpt"
)

// checkRoot checks, before anything is mounted, that a root filesystem
// given in place of the image's (restart --root) is a directory holding
// the mount points of the mounts the image has on its root, each the kind
// of file it was: what the files of the image need of it comes when they
// are opened.
func checkRoot(ms []ckpt.Mount, root string) error {
	if root == "" || len(ms) == 0 {
		return nil
	}
	if fi, err := os.Stat(root); err != nil {
		return fmt.Errorf("the root given: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("the root given (%s) is not a directory", root)
	}
	var missing []string
	for _, m := range ms[1:] {
		if m.Parent != ms[0].ID {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, m.Path))
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("%s (where the image mounts %s)", m.Path, m.FSType))
		case fi.IsDir() == m.File:
			want := "a directory"
			if m.File {
				want = "a file"
			}
			missing = append(missing, fmt.Sprintf("%s as %s (where the image mounts %s)", m.Path, want, m.FSType))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the root given (%s) lacks %s", root, strings.Join(missing, ", "))
	}
	return nil
}

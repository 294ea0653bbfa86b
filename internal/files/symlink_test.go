package files

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestSymlinkRoundTrip restores O_PATH|O_NOFOLLOW descriptions of a symbolic
// link that is still there and of one removed since (its ghost).
func TestSymlinkRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		removed bool
	}{{"present", false}, {"removed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			link := filepath.Join(dir, "link")
			target := filepath.Join(dir, "no such target")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(link, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if tc.removed {
				if err := os.Remove(link); err != nil {
					t.Fatal(err)
				}
			}
			file, nfd, lt := roundTrip(t, fd)
			if len(lt.warns) != 0 {
				t.Errorf("warnings: %q", lt.warns)
			}
			if file.Kind != "symlink" || file.Deleted != tc.removed {
				t.Errorf("recorded as %s, deleted %v", file.Kind, file.Deleted)
			}
			var st unix.Stat_t
			if err := unix.Fstat(nfd, &st); err != nil {
				t.Fatal(err)
			}
			got, err := readlinkFd(os.NewFile(uintptr(nfd), "restored"))
			if err != nil {
				t.Fatal(err)
			}
			// (A removed link keeps its name until the restart ends.)
			type state struct {
				Link   bool
				Target string
			}
			if diff := cmp.Diff(state{true, target}, state{st.Mode&unix.S_IFMT == unix.S_IFLNK, got}); diff != "" {
				t.Errorf("restored (-want +got):\n%s", diff)
			}
		})
	}
}

package files

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestMarkCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		mark ckpt.FanotifyMark
		want []markCall
	}{
		{"events only", ckpt.FanotifyMark{Mask: unix.FAN_OPEN}, []markCall{{mask: unix.FAN_OPEN}}},
		{"ignored mask", ckpt.FanotifyMark{Mask: unix.FAN_OPEN, IgnoredMask: unix.FAN_MODIFY},
			[]markCall{{mask: unix.FAN_OPEN}, {flags: unix.FAN_MARK_IGNORED_MASK, mask: unix.FAN_MODIFY}}},
		{"ignored mask only, surviving modification",
			ckpt.FanotifyMark{Flags: unix.FAN_MARK_IGNORED_SURV_MODIFY, IgnoredMask: unix.FAN_ACCESS},
			[]markCall{{flags: unix.FAN_MARK_IGNORED_MASK | unix.FAN_MARK_IGNORED_SURV_MODIFY, mask: unix.FAN_ACCESS}}},
		{"FAN_MARK_IGNORE", ckpt.FanotifyMark{Flags: unix.FAN_MARK_IGNORE, Mask: unix.FAN_CLOSE_WRITE, IgnoredMask: unix.FAN_OPEN | unix.FAN_ONDIR},
			[]markCall{{mask: unix.FAN_CLOSE_WRITE}, {flags: unix.FAN_MARK_IGNORE, mask: unix.FAN_OPEN | unix.FAN_ONDIR}}},
		{"evictable is the caller's", ckpt.FanotifyMark{Flags: unix.FAN_MARK_EVICTABLE, Mask: unix.FAN_OPEN}, []markCall{{mask: unix.FAN_OPEN}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, markCalls(&tc.mark), cmp.AllowUnexported(markCall{})); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarkFlagNames(t *testing.T) {
	got := markFlagNames(unix.FAN_MARK_ADD | unix.FAN_MARK_MOUNT | unix.FAN_MARK_IGNORED_MASK | unix.FAN_MARK_IGNORED_SURV_MODIFY)
	if want := "FAN_MARK_ADD|FAN_MARK_MOUNT|FAN_MARK_IGNORED_MASK|FAN_MARK_IGNORED_SURV_MODIFY"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestFanotifyRoundTrip restores a group with inode, mount and filesystem
// marks, ignore masks of both styles, an evictable mark and a mark on a
// removed file, and compares fdinfo.
func TestFanotifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	// A filesystem of the test's own: a modification anywhere on the
	// mount clears an ignore mask without FAN_MARK_IGNORED_SURV_MODIFY,
	// and other tests write in the temporary directory meanwhile.
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("a tmpfs for the test: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_NONBLOCK|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_LARGEFILE)
	if err != nil {
		t.Skipf("fanotify_init: %v", err)
	}
	defer unix.Close(fd)
	var paths []string
	for _, name := range []string{"a", "b", "c", "removed"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	held, err := os.Open(paths[3])
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	marks := []struct {
		flags uint
		mask  uint64
		path  string
	}{
		{unix.FAN_MARK_ADD, unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE, paths[0]},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_IGNORED_MASK | unix.FAN_MARK_IGNORED_SURV_MODIFY, unix.FAN_ACCESS, paths[0]},
		{unix.FAN_MARK_ADD, unix.FAN_OPEN, paths[1]},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_IGNORE, unix.FAN_MODIFY, paths[1]},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_EVICTABLE, unix.FAN_CLOSE_NOWRITE, paths[2]},
		{unix.FAN_MARK_ADD, unix.FAN_MODIFY, paths[3]},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_MOUNT, unix.FAN_OPEN | unix.FAN_ONDIR, dir},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_MOUNT | unix.FAN_MARK_IGNORED_MASK, unix.FAN_ACCESS, dir},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, dir},
	}
	for _, m := range marks {
		if err := unix.FanotifyMark(fd, m.flags, m.mask, unix.AT_FDCWD, m.path); err != nil {
			t.Skipf("fanotify_mark(%s, %#x, %s): %v", markFlagNames(m.flags), m.mask, m.path, err)
		}
	}
	if err := os.Remove(paths[3]); err != nil {
		t.Fatal(err)
	}
	before, err := procfs.ReadFdInfo(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Fanotify.Marks) != 6 || before.Fanotify.Marks[5].Handle == nil {
		t.Skipf("fdinfo: %+v", before.Fanotify)
	}
	if _, err := unix.OpenByHandleAt(unix.AT_FDCWD, unix.NewFileHandle(1, make([]byte, 8)), unix.O_PATH); err == unix.EPERM {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	file, nfd, lt := roundTrip(t, fd)
	if len(lt.warns) != 0 {
		t.Errorf("warnings: %q", lt.warns)
	}
	var kinds []string
	for _, m := range file.Fanotify.Marks {
		name := filepath.Base(m.Path)
		if m.Kind != ckpt.FanotifyInode {
			name = m.Kind
		}
		if m.Ghost != 0 {
			name += " (ghost)"
		}
		kinds = append(kinds, name)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "removed (ghost)", "mount", "filesystem"}, kinds); diff != "" {
		t.Errorf("marks in the image (-want +got):\n%s", diff)
	}
	after, err := procfs.ReadFdInfo(os.Getpid(), nfd)
	if err != nil {
		t.Fatal(err)
	}
	// The removed file is a new inode: its ghost.
	for _, info := range []*procfs.FdInfo{&before, &after} {
		for i := range info.Fanotify.Marks {
			if m := &info.Fanotify.Marks[i]; m.Kind == procfs.FanotifyMarkInode && m.Mask == unix.FAN_MODIFY {
				m.Ino, m.Handle = 0, nil
			}
		}
	}
	if diff := cmp.Diff(before.Fanotify, after.Fanotify); diff != "" {
		t.Errorf("restored group (-want +got):\n%s", diff)
	}
}

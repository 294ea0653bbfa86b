package checkpoint

import (
	"bytes"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func allocated(t *testing.T, f *os.File) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestImageRoom allocates room past the end of an empty image file, on
// tmpfs and on the test's temporary directory's filesystem (ext4 here: a
// hole punched past the end does nothing there), and gives back what the
// image did not use; anything else gets none.
func TestImageRoom(t *testing.T) {
	// The test binary's own private memory: a few MiB at least.
	keep := bytes.Repeat([]byte{1}, 8<<20)
	pid := os.Getpid()
	estimate := func() int64 { return treeResidentEstimate(pid) }
	var f *os.File
	for _, dir := range []string{"/dev/shm", t.TempDir()} {
		var err error
		if f, err = os.CreateTemp(dir, "crsub-room-test"); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		room, err := makeRoom(f, estimate)
		if err != nil {
			var fs unix.Statfs_t
			_ = unix.Fstatfs(int(f.Fd()), &fs)
			t.Logf("%s (filesystem %#x): no room: %v", dir, fs.Type, err)
			continue
		}
		if room == nil {
			t.Fatalf("%s: no room made in an empty file", dir)
		}
		if got := allocated(t, f); got < int64(len(keep)) {
			t.Fatalf("%s: %d bytes allocated, want at least %d", dir, got, len(keep))
		}
		if fi, _ := f.Stat(); fi.Size() != 0 {
			t.Fatalf("%s: the room changed the file's size to %d", dir, fi.Size())
		}
		if _, err := f.Write(keep[:1<<20]); err != nil {
			t.Fatal(err)
		}
		room.trim()
		if got := allocated(t, f); got > 1<<20+1<<16 {
			t.Errorf("%s: %d bytes still allocated after the trim of a 1 MiB image", dir, got)
		}
		if fi, _ := f.Stat(); fi.Size() != 1<<20 {
			t.Errorf("%s: the trim changed the file's size to %d", dir, fi.Size())
		}
	}

	// The file is no longer empty: what is there is not the checkpoint's.
	if room, _ := makeRoom(f, estimate); room != nil {
		t.Error("room made in a file that holds data")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"pipe": w, "buffer": &bytes.Buffer{}, "memory image": newMemoryWriter(0, 0)} {
		if room, _ := makeRoom(out, estimate); room != nil {
			t.Errorf("room made in a %s", name)
		}
	}
	var nilRoom *imageRoom
	nilRoom.trim()
}

package files

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestProcPidPath(t *testing.T) {
	type result struct {
		Pid  int
		Rest string
		OK   bool
	}
	for _, tc := range []struct {
		path string
		want result
	}{
		{"/proc/123/stat", result{123, "/stat", true}},
		{"/proc/123", result{123, "", true}},
		{"/proc/123/", result{123, "/", true}},
		{"/proc/7/task/8/status", result{7, "/task/8/status", true}},
		{"/proc/self/stat", result{}},
		{"/proc/sys/kernel/ns_last_pid", result{}},
		{"/proc/0123/stat", result{}},
		{"/proc/0/stat", result{}},
		{"/proc//stat", result{}},
		{"/proc/", result{}},
		{"/proc/12a/stat", result{}},
		{"/proc/99999999999999999999/stat", result{}},
		{"/tmp/proc/1/stat", result{}},
		{"/procx/1", result{}},
	} {
		pid, rest, ok := procPidPath(tc.path)
		if diff := cmp.Diff(tc.want, result{pid, rest, ok}); diff != "" {
			t.Errorf("procPidPath(%q) (-want +got):\n%s", tc.path, diff)
		}
	}
}

func FuzzProcPidPath(f *testing.F) {
	for _, s := range []string{"/proc/1/stat", "/proc/123", "/proc/self/fd/3", "/proc/01/x", "/proc/1//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		pid, rest, ok := procPidPath(path)
		if !ok {
			if pid != 0 || rest != "" {
				t.Fatalf("not ok but %d %q", pid, rest)
			}
			return
		}
		if pid <= 0 || (rest != "" && rest[0] != '/') {
			t.Fatalf("%q: pid %d rest %q", path, pid, rest)
		}
		if got := "/proc/" + strconv.Itoa(pid) + rest; got != path {
			t.Fatalf("%q splits into %d and %q, which make %q", path, pid, rest, got)
		}
	})
}

// TestTmpfileRoundTrip restores an O_TMPFILE file, which keeps O_TMPFILE
// in its status flags: it is its ghost again, not a new O_TMPFILE.
func TestTmpfileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o640)
	if err != nil {
		t.Skipf("O_TMPFILE: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("tmpfile")); err != nil {
		t.Fatal(err)
	}
	if fl := flagsOf(t, fd); fl&unix.O_TMPFILE != unix.O_TMPFILE {
		t.Logf("status flags %#o without O_TMPFILE", fl)
	}
	file, nfd, _ := roundTrip(t, fd)
	if !file.Deleted {
		t.Errorf("not recorded as deleted: %+v", file)
	}
	var st unix.Stat_t
	if err := unix.Fstat(nfd, &st); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	n, _ := unix.Pread(nfd, b, 0)
	if string(b[:n]) != "tmpfile" || st.Nlink != 0 || st.Mode&0o777 != 0o640 {
		t.Errorf("restored: %q, %d links, mode %#o", b[:n], st.Nlink, st.Mode&0o777)
	}
	if pos, _ := unix.Seek(nfd, 0, 1); pos != 7 {
		t.Errorf("offset %d, want 7", pos)
	}
}

package ns

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fileInfo is what the archive keeps of a file, to compare trees.
type fileInfo struct {
	Mode     uint32
	UID, GID uint32
	Nlink    uint64
	Mtime    int64
	Contents string
	Xattr    string
}

// snapshot lists the files under dir (but dir itself) with what the
// archive keeps of them.
func snapshot(t *testing.T, dir string) map[string]fileInfo {
	t.Helper()
	out := map[string]fileInfo{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi := fileInfo{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Nlink: st.Nlink, Mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi.Contents = string(b)
			v := make([]byte, 64)
			if n, err := unix.Lgetxattr(p, "user.crsub", v); err == nil {
				fi.Xattr = string(v[:n])
			}
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fi.Contents = l
		case unix.S_IFDIR:
			fi.Nlink = 0 // counts subdirectories, made in another order
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fi
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestFilesRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a", "b"), 0o750))
	must(os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("contents"), 0o640))
	must(os.Chmod(filepath.Join(src, "a", "b", "f"), 0o2640))
	must(os.Chown(filepath.Join(src, "a", "b", "f"), 0, 5))
	if err := unix.Setxattr(filepath.Join(src, "a", "b", "f"), "user.crsub", []byte("x1"), 0); err != nil && err != unix.ENOTSUP {
		t.Fatal(err)
	}
	must(os.Link(filepath.Join(src, "a", "b", "f"), filepath.Join(src, "hard")))
	must(os.Symlink("a/b/f", filepath.Join(src, "sym")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o600))
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, p := range []string{"a/b/f", "empty", "a/b", "a", "fifo"} {
		must(os.Chtimes(filepath.Join(src, p), old, old))
	}
	must(unix.Lutimes(filepath.Join(src, "sym"), []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())}))

	var size countWriter
	n, err := writeFiles(&size, openDir(t, src), "", false)
	must(err)
	var buf bytes.Buffer
	n2, err := writeFiles(&buf, openDir(t, src), "", true)
	must(err)
	if n != n2 || int64(size) != int64(buf.Len()) {
		t.Fatalf("sizing pass: %d entries, %d bytes; writing pass: %d entries, %d bytes", n, size, n2, buf.Len())
	}
	got, err := readFiles(bytes.NewReader(buf.Bytes()), int64(buf.Len()), openDir(t, dst))
	must(err)
	if got != n {
		t.Errorf("read %d entries, wrote %d", got, n)
	}
	if diff := cmp.Diff(snapshot(t, src), snapshot(t, dst)); diff != "" {
		t.Errorf("tree mismatch (-source +restored):\n%s", diff)
	}
}

// FuzzReadFiles feeds readFiles archives, well-formed or not: it must
// never make anything outside the directory it is given.
func FuzzReadFiles(f *testing.F) {
	add := func(hs ...*tar.Header) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			_ = tw.WriteHeader(h)
			if h.Size > 0 {
				_, _ = tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		_ = tw.Close()
		f.Add(b.Bytes())
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 3, Mode: 0o600})
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/"}, &tar.Header{Typeflag: tar.TypeReg, Name: "l/escape", Size: 1})
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "../up", Size: 1})
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../../etc/passwd"})
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "d/e/f/"}, &tar.Header{Typeflag: tar.TypeFifo, Name: "d/p", Mode: 0o644})
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "in")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		_, _ = readFiles(bytes.NewReader(b), int64(len(b)), fd)
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "in" {
			t.Fatalf("readFiles made %v beside the directory it was given", names)
		}
	})
}

// A device node of a filesystem made anew that a mount shows (runc masks
// paths with binds of its /dev tmpfs's null) is made before the
// filesystem's files come, once for all its mounts; the archive's node
// then finds it there, and one of another kind or device fails.
func TestFilesOverMountRoots(t *testing.T) {
	null := uint64(unix.Mkdev(1, 3))
	for _, tc := range []struct {
		name    string
		typ     uint32
		rdev    uint64
		archive *tar.Header
		ok      bool
	}{
		{"the same node", unix.S_IFCHR, null, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, true},
		{"a FIFO", unix.S_IFIFO, 0, &tar.Header{Name: "null", Typeflag: tar.TypeFifo, Mode: 0o600}, true},
		{"another device", unix.S_IFCHR, null, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 5, Mode: 0o666}, false},
		{"a regular file", unix.S_IFREG, 0, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, false},
	} {
		dir := t.TempDir()
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a second mount of it
			if err := makePath(fd, "null", tc.typ, tc.rdev); err != nil {
				t.Fatalf("%s: makePath: %v", tc.name, err)
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(tc.archive); err != nil {
			t.Fatal(err)
		}
		tw.Close()
		_, err = readFiles(&buf, int64(buf.Len()), fd)
		unix.Close(fd)
		if (err == nil) != tc.ok {
			t.Errorf("%s: readFiles: %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, "null"), &st); tc.ok && (err != nil || st.Mode&0o7777 != uint32(tc.archive.Mode)) {
			t.Errorf("%s: after readFiles: %v, mode %o, want %o", tc.name, err, st.Mode&0o7777, tc.archive.Mode)
		}
	}
}

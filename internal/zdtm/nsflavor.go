package zdtm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The ns flavour starts a test as zdtm.py's does: the test binary, told
// ZDTM_NEWNS=1, clones itself into new pid, mount, UTS, network and IPC
// namespaces (and a time namespace), and there takes ZDTM_ROOT as its root
// (a recursive bind mount of it, pivot_root) with ZDTM_DEV bound on its
// /dev, mounts proc, a tmpfs on /run and a devpts, and forks the test. Its
// init (pid 1 there) is what is checkpointed, from the host; its pid goes
// to NAME.pid. ZDTM_ROOT is a bind mount of CRIU's test directory, in
// which the directories of a root (bin, lib, usr...) are made, and the
// libraries and programs a test needs copied; ZDTM_DEV a tmpfs with the
// few devices tests use. Both stay mounted on the host while tests run:
// for CRIU and crsub they are external mounts.

// NsRoot is the ns flavour's root and /dev for the tests of one run.
type NsRoot struct {
	// Root is the tests' root (a bind mount of TestDir while a test runs),
	// Dev their /dev (a tmpfs).
	Root, Dev string
	// TestDir is CRIU's test directory (the static directory's grandparent).
	TestDir string
	// UserNS is the uns flavour: the test's init clones into a user
	// namespace too, whose maps it writes from outside (zdtm's lib/ns.c,
	// told ZDTM_USERNS=1: uids 0 20000 20000 and 100000 200000 50000, gids
	// 0 400000 50000 and 50000 500000 100000).
	UserNS bool
	tmp    string
}

// nsRootDirs are the directories a test's root has, made in TestDir.
var nsRootDirs = []string{"/bin", "/sbin", "/etc", "/lib", "/lib64", "/dev", "/tmp", "/usr", "/proc", "/run"}

// NewNsRoot makes the ns flavour's root and /dev under TMPDIR, for the
// tests of static directory static; userNS: for the uns flavour, whose
// root's test directory and the tests' own are opened to everyone, as
// zdtm.py does (root in the tests' user namespace is no one outside).
func NewNsRoot(static string, userNS bool) (*NsRoot, error) {
	abs, err := filepath.Abs(static)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(os.Getenv("TMPDIR"), "criu-root-")
	if err != nil {
		return nil, err
	}
	n := &NsRoot{Root: filepath.Join(tmp, "root", "root"), Dev: filepath.Join(tmp, "dev"), TestDir: filepath.Dir(filepath.Dir(abs)), UserNS: userNS, tmp: tmp}
	if userNS {
		// The tests write their .pid and .out files in their own
		// directory (static, transition) too.
		var err error
		for _, d := range []string{n.TestDir, abs} {
			var fi os.FileInfo
			if fi, err = os.Stat(d); err == nil {
				err = os.Chmod(d, fi.Mode().Perm()|0o077)
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			// The tests' root is reached through tmp (0700 as made).
			err = os.Chmod(tmp, 0o755)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	for _, d := range []string{n.Root, n.Dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := unix.Mount("criu-test-dev", n.Dev, "tmpfs", 0, ""); err != nil {
		n.Close()
		return nil, fmt.Errorf("mount tmpfs on %s: %w", n.Dev, err)
	}
	if err := n.makeDev(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// makeDev makes the devices the tests' /dev holds, as zdtm.py does.
func (n *NsRoot) makeDev() error {
	if err := os.Chmod(n.Dev, 0o777); err != nil {
		return err
	}
	for _, d := range []string{"pts", "net"} {
		if err := os.Mkdir(filepath.Join(n.Dev, d), 0o755); err != nil {
			return err
		}
	}
	for name, rdev := range map[string]uint64{"tty": unix.Mkdev(5, 0), "null": unix.Mkdev(1, 3), "autofs": unix.Mkdev(10, 235), "net/tun": 0, "rtc": 0} {
		mode := uint32(unix.S_IFCHR)
		if rdev == 0 {
			var st unix.Stat_t
			if unix.Stat(filepath.Join("/dev", name), &st) != nil {
				continue // zdtm.py skips it too
			}
			rdev = st.Rdev
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				mode = unix.S_IFBLK
			}
		}
		p := filepath.Join(n.Dev, name)
		if err := unix.Mknod(p, mode|0o666, int(rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		if err := os.Chmod(p, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// Close unmounts the tests' /dev and root and removes their directories.
func (n *NsRoot) Close() error {
	_ = unix.Unmount(n.Root, unix.MNT_DETACH)
	var err error
	if e := unix.Unmount(n.Dev, unix.MNT_DETACH); e != nil && e != unix.EINVAL {
		err = fmt.Errorf("umount %s: %w", n.Dev, e)
	}
	if e := os.RemoveAll(n.tmp); e != nil && err == nil {
		err = e
	}
	return err
}

// Prepare readies the root for test t: TestDir bound on it (private), the
// root's directories made in TestDir once, the libraries of the test
// binary and the programs of its deps copied in. The function returned
// unmounts the root again.
func (n *NsRoot) Prepare(ctx context.Context, t *Test) (func(), error) {
	if err := unix.Mount(n.TestDir, n.Root, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind %s on %s: %w", n.TestDir, n.Root, err)
	}
	undo := func() { _ = unix.Unmount(n.Root, unix.MNT_DETACH) }
	if err := unix.Mount("", n.Root, "", unix.MS_PRIVATE, ""); err != nil {
		undo()
		return nil, fmt.Errorf("make %s private: %w", n.Root, err)
	}
	if err := n.construct(); err != nil {
		undo()
		return nil, err
	}
	if err := n.copyLibs(ctx, t.Path("")); err != nil {
		undo()
		return nil, err
	}
	for _, dep := range t.Desc.Deps {
		if err := n.copyDep(ctx, dep); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// construct makes the root's directories in TestDir, once (.constructed).
func (n *NsRoot) construct() error {
	done := filepath.Join(n.TestDir, ".constructed")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	for _, d := range nsRootDirs {
		p := n.TestDir + d
		if err := os.Mkdir(p, 0o777); err != nil && !os.IsExist(err) {
			return err
		}
		if err := os.Chmod(p, 0o777); err != nil {
			return err
		}
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		if err := os.Symlink(".."+d, n.TestDir+"/usr"+d); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return os.WriteFile(done, nil, 0o600)
}

// copyDep copies the first of the alternatives of dep ("/sbin/ip|/bin/ip")
// that exists, and its libraries.
func (n *NsRoot) copyDep(ctx context.Context, dep string) error {
	for _, d := range strings.Split(dep, "|") {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := n.copyOne(d); err != nil {
			return err
		}
		return n.copyLibs(ctx, d)
	}
	return fmt.Errorf("deps check %s failed", dep)
}

// copyLibs copies the libraries binary needs (ldd), as zdtm.py does.
func (n *NsRoot) copyLibs(ctx context.Context, binary string) error {
	out, _ := exec.CommandContext(ctx, "ldd", binary).Output()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "linux-vdso") || strings.HasPrefix(f[0], "linux-gate") || strings.Contains(line, "not a dynamic") {
			continue
		}
		lib := f[0]
		if len(f) > 2 && f[1] == "=>" {
			lib = f[2]
		}
		if _, err := os.Stat(lib); err != nil {
			return fmt.Errorf("cannot find lib %s required by %s", lib, binary)
		}
		if err := n.copyOne(lib); err != nil {
			return err
		}
	}
	return nil
}

// copyOne copies file into TestDir at the same path, unless it is there:
// through a temporary name, as tests may run in parallel.
func (n *NsRoot) copyOne(file string) error {
	dst := n.TestDir + file
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "*.tso")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// env is what the ns flavour adds to a test's environment.
func (n *NsRoot) env(t *Test) []string {
	env := []string{"ZDTM_NEWNS=1", "ZDTM_ROOT=" + n.Root, "ZDTM_DEV=" + n.Dev,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if t.Desc.Bind != "" {
		env = append(env, "ZDTM_BIND="+t.Desc.Bind)
	}
	if n.UserNS {
		env = append(env, "ZDTM_USERNS=1")
	}
	return env
}

package criurpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/substitute"
)

// readStats reads what writeStats wrote.
func readStats(r io.Reader) (*rpcpb.StatsEntry, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 || binary.LittleEndian.Uint32(b) != imgServiceMagic || binary.LittleEndian.Uint32(b[4:]) != statsMagic {
		return nil, errors.New("not a CRIU statistics file")
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if uint64(n) != uint64(len(b)-12) {
		return nil, fmt.Errorf("statistics entry of %d bytes in %d", n, len(b)-12)
	}
	e := &rpcpb.StatsEntry{}
	return e, proto.Unmarshal(b[12:], e)
}

func TestStatsFiles(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &workspace{work: d}
	defer w.close()
	want := &rpcpb.StatsEntry{Dump: dumpStats(&checkpoint.Stats{Frozen: 1500 * time.Microsecond, PagesStored: 42})}
	if err := writeStats(w, statsDump, want); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, statsDump))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := readStats(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpProto); diff != "" {
		t.Errorf("stats-dump (-want +got):\n%s", diff)
	}
	if got.GetDump().GetFrozenTime() != 1500 || got.GetDump().GetPagesWritten() != 42 {
		t.Errorf("frozen %d us, %d pages; want 1500, 42", got.GetDump().GetFrozenTime(), got.GetDump().GetPagesWritten())
	}
}

// cg_root entries become restart's CgroupRoots: every hierarchy not named
// (""), the unified one as runc names it (ctrl ""), and by controller.
func TestCgroupRoots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		roots []CgroupRoot
		want  map[string]string
	}{
		{"none", nil, nil},
		{"by controller, then every other", []CgroupRoot{{Ctrl: "memory", Path: "/m"}, {Path: "/u", Every: true}}, map[string]string{"memory": "/m", "": "/u"}},
		{"one only", []CgroupRoot{{Ctrl: "pids", Path: "/p"}}, map[string]string{"pids": "/p"}},
		{"the unified one, as runc names it", []CgroupRoot{{Ctrl: "", Path: "/c"}, {Ctrl: "pids", Path: "/c"}}, map[string]string{cgroup.Unified: "/c", "pids": "/c"}},
	} {
		if diff := cmp.Diff(tc.want, cgroupRoots(tc.roots)); diff != "" {
			t.Errorf("%s: cgroupRoots (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestKernelVersion(t *testing.T) {
	for release, want := range map[string][2]int{"6.18.0-rc1": {6, 18}, "6.7.1": {6, 7}, "5.15": {5, 15}, "7.0.0+": {7, 0}} {
		if got, ok := kernelVersion(release); !ok || got != want {
			t.Errorf("kernelVersion(%q) = %v, %v; want %v", release, got, ok, want)
		}
	}
	if _, ok := kernelVersion("linux"); ok {
		t.Error("kernelVersion(\"linux\") parsed")
	}
}

func TestInheritSubstitutes(t *testing.T) {
	pipe := func(fd int, ref ckpt.Objref, ino uint64) ckpt.FdView {
		return ckpt.FdView{Fd: fd, Objref: ref, File: ckpt.File{Kind: ckpt.FilePipe, Identity: ckpt.FileIdentity{Inode: ino}, External: true}}
	}
	inv := &ckpt.Inventory{
		Tree: ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 10}, {Pid: 11, Ppid: 10}}},
		Processes: []*ckpt.ProcessView{
			{Process: ckpt.Process{Pid: 10}, Fds: []ckpt.FdView{
				pipe(0, 1, 100), pipe(1, 2, 200), pipe(2, 2, 200), // 2>&1
				{Fd: 3, Objref: 3, File: ckpt.File{Kind: ckpt.FileTTY, Path: "/dev/pts/3", Rdev: 0x8803, Identity: ckpt.FileIdentity{Dev: 0x18}, External: true}},
				{Fd: 4, Objref: 4, File: ckpt.File{Kind: ckpt.FileRegular, Path: "/var/log/app.log"}},
				{Fd: 5, Objref: 5, File: ckpt.File{Kind: ckpt.FileUnixSocket, Identity: ckpt.FileIdentity{Inode: 77}, External: true}},
			}},
			{Process: ckpt.Process{Pid: 11}, Fds: []ckpt.FdView{pipe(1, 2, 200), pipe(7, 6, 300)}},
		},
	}
	files := []inheritedFile{
		{InheritFd: InheritFd{"pipe:[100]", 20}}, {InheritFd: InheritFd{"pipe:[200]", 21}}, {InheritFd: InheritFd{"pipe:[300]", 22}},
		{InheritFd: InheritFd{"tty[8803:18]", 23}}, {InheritFd: InheritFd{"var/log/app.log", 24}}, {InheritFd: InheritFd{"socket:[77]", 25}},
		{InheritFd: InheritFd{"pipe:[999]", 26}}, {InheritFd: InheritFd{"extRootNetNS", 27}, ns: "net"},
	}
	root, others, unused := inheritSubstitutes(inv, files)
	fd := func(n int) substitute.Source { return substitute.Source{Kind: substitute.KindFD, FD: n} }
	if diff := cmp.Diff(map[int]substitute.Source{0: fd(20), 1: fd(21), 3: fd(23), 4: fd(24), 5: fd(25)}, root); diff != "" {
		t.Errorf("root's substitutes (-want +got):\n%s", diff)
	}
	// The child's fd 1 shares the root's file: it follows the substitute.
	if diff := cmp.Diff(map[int]map[int]substitute.Source{11: {7: fd(22)}}, others); diff != "" {
		t.Errorf("others' substitutes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pipe:[999]", "extRootNetNS"}, unused); diff != "" {
		t.Errorf("unused keys (-want +got):\n%s", diff)
	}
	if err := orphanTerminals(inv, root, others); err != nil {
		t.Errorf("the inherited terminal: %v", err)
	}
	delete(root, 3)
	var re *RefusedError
	if err := orphanTerminals(inv, root, others); !errors.As(err, &re) || re.Field != "orphan_pts_master" {
		t.Errorf("a terminal left without master: %v, want orphan_pts_master refused", err)
	}
}

func TestRestoreMounts(t *testing.T) {
	dir := t.TempDir()
	mnt := &ckpt.NamespaceView{Namespace: ckpt.Namespace{Kind: ckpt.NamespaceMnt, Mnt: &ckpt.MountNamespace{Mounts: []ckpt.Mount{
		{ID: 1, Path: "/", FSType: "ext4", Root: "/srv/ctr/rootfs", External: "/srv/ctr/rootfs"},
		{ID: 2, Parent: 1, Path: "/data", FSType: "ext4", Root: "/srv/data", External: "/srv/data"},
		{ID: 3, Parent: 1, Path: "/sys/fs/cgroup/cpu", FSType: "cgroup", Root: "/ctr", External: "/sys/fs/cgroup/cpu/ctr"},
		{ID: 4, Parent: 1, Path: "/dev", FSType: "tmpfs", Root: "/"},
	}}}}
	made := &ckpt.NamespaceView{Namespace: ckpt.Namespace{Kind: ckpt.NamespaceMnt, Mnt: &ckpt.MountNamespace{Mounts: []ckpt.Mount{
		{ID: 1, Path: "/", FSType: "tmpfs", Root: "/"},
	}}}}
	for _, tc := range []struct {
		name      string
		r         Request
		mnt       *ckpt.NamespaceView
		wantRoot  string
		wantMoved map[string]string
		refused   string
	}{
		{name: "crsub's namespace, no root", r: Request{}},
		{name: "crsub's namespace, its root", r: Request{Root: "/"}},
		{name: "crsub's namespace, another root", r: Request{Root: dir}, refused: "root"},
		{name: "runc's root and ext_mnt of cgroups, a moved bind mount, one the image lacks", mnt: mnt,
			r:        Request{Root: dir, ExtMounts: []ExtMount{{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu"}, {"/data", dir}, {"/nowhere", "/x"}, {"/dev", dir}}},
			wantRoot: dir, wantMoved: map[string]string{"/srv/data": dir}},
		{name: "ext_mnt to the path the image has", mnt: mnt, r: Request{ExtMounts: []ExtMount{{"/data", "/srv/data"}}}},
		{name: "ext_mnt to nothing", mnt: mnt, r: Request{ExtMounts: []ExtMount{{"/data", dir + "/missing"}}}, refused: "ext_mnt"},
		{name: "a root made in the namespace", mnt: made, r: Request{Root: dir}, refused: "root"},
	} {
		root, moved, err := restoreMounts(&tc.r, tc.mnt)
		var re *RefusedError
		switch {
		case tc.refused != "":
			if !errors.As(err, &re) || re.Field != tc.refused {
				t.Errorf("%s: restoreMounts error %v, want %s refused", tc.name, err, tc.refused)
			}
			continue
		case err != nil:
			t.Errorf("%s: restoreMounts: %v", tc.name, err)
			continue
		}
		if root != tc.wantRoot || !cmp.Equal(moved, tc.wantMoved) {
			t.Errorf("%s: restoreMounts = %q, %v; want %q, %v", tc.name, root, moved, tc.wantRoot, tc.wantMoved)
		}
	}
}

func TestEmptyNetwork(t *testing.T) {
	lo := ckpt.NetLink{Index: 1, Name: "lo", Kind: ckpt.LinkLoopback, Builtin: true}
	for _, tc := range []struct {
		name    string
		net     *ckpt.NamespaceView
		refused bool
	}{
		{name: "no network namespace of its own", refused: true},
		{name: "lo only", net: &ckpt.NamespaceView{Network: &ckpt.Network{Links: []ckpt.NetLink{lo}}}},
		{name: "lo and the fallback tunnels", net: &ckpt.NamespaceView{Network: &ckpt.Network{Links: []ckpt.NetLink{lo, {Index: 2, Name: "sit0", Builtin: true}}}}},
		{name: "a veth the runtime would add", net: &ckpt.NamespaceView{Network: &ckpt.Network{Links: []ckpt.NetLink{lo, {Index: 3, Name: "eth0", Kind: ckpt.LinkVeth}}}}, refused: true},
	} {
		err := emptyNetwork(tc.net)
		var re *RefusedError
		if got := errors.As(err, &re) && re.Field == "empty_ns"; got != tc.refused || (err != nil && !got) {
			t.Errorf("%s: emptyNetwork = %v, want refused %v", tc.name, err, tc.refused)
		}
	}
}

func TestNamespaceKind(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/proc/self/ns/net", "net"},
		{"/proc/self/ns/uts", "uts"},
		{"/proc/self/ns/pid", "pid"},
		{"/proc/self/status", ""},
	} {
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := namespaceKind(int(f.Fd())); got != tc.want {
			t.Errorf("namespaceKind(%s) = %q, want %q", tc.path, got, tc.want)
		}
		f.Close()
	}
}

func TestSupplyNamespace(t *testing.T) {
	supplied := map[string]substitute.Namespace{}
	if err := supplyNamespace(supplied, "inherit_fd", "net", "/proc/self/ns/net"); err != nil || len(supplied) != 0 {
		t.Errorf("crsub's own network namespace: %v, supplied %v; want nothing to join", err, supplied)
	}
	var re *RefusedError
	if err := supplyNamespace(supplied, "join_ns", "net", "/nonexistent/ns"); !errors.As(err, &re) || re.Field != "join_ns" {
		t.Errorf("a missing namespace file: %v, want join_ns refused", err)
	}
}

// Namespaces other than crsub's are joined where the restart can
// (network, UTS…), refused for a pid namespace, and given once.
func TestSupplyOtherNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := exec.Command("unshare", "--net", "--uts", "--pid", "--fork", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// The sleep, in the new pid namespace, is unshare's child.
	var pid int
	for range 100 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("unshare's child not found")
	}
	supplied := map[string]substitute.Namespace{}
	for _, kind := range []string{"net", "uts"} {
		if err := supplyNamespace(supplied, "inherit_fd", kind, fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); err != nil {
			t.Errorf("%s namespace: %v", kind, err)
		}
	}
	want := map[string]substitute.Namespace{"net": {Path: fmt.Sprintf("/proc/%d/ns/net", pid)}, "uts": {Path: fmt.Sprintf("/proc/%d/ns/uts", pid)}}
	if diff := cmp.Diff(want, supplied); diff != "" {
		t.Errorf("supplied (-want +got):\n%s", diff)
	}
	var re *RefusedError
	if err := supplyNamespace(supplied, "join_ns", "net", fmt.Sprintf("/proc/%d/ns/net", pid)); !errors.As(err, &re) {
		t.Errorf("a second network namespace: %v, want refused", err)
	}
	if err := supplyNamespace(supplied, "join_ns", "pid", fmt.Sprintf("/proc/%d/ns/pid", pid)); !errors.As(err, &re) || re.Field != "join_ns" {
		t.Errorf("a pid namespace: %v, want join_ns refused", err)
	}
}

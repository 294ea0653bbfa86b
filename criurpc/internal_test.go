package criurpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/cgroup"
	"github.com/crsub/crsub/restart"
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
	// A namespace is no file: supplyNamespaces takes it.
	if diff := cmp.Diff([]string{"pipe:[999]"}, unused); diff != "" {
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

// A failure's errno is what CRIU's would be, for libcriu's callers that
// branch on it (criu_get_last_errno; CRIU's test_errno).
func TestFailureErrno(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int32
	}{
		{"no such process", fmt.Errorf("checkpoint: %w", &checkpoint.NoProcessError{Pid: 7}), int32(syscall.ESRCH)},
		{"pid in use", fmt.Errorf("restart: %w", &restart.PidInUseError{Pid: 7, Comm: "sh", State: 'S'}), int32(syscall.EEXIST)},
		{"refused", &RefusedError{Field: "log_file", Reason: "not a name"}, int32(syscall.EBADRQC)},
		{"other", errors.New("something"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := failure(rpcpb.CriuReqType_DUMP, tc.err)
			if resp.GetSuccess() || resp.GetCrErrno() != tc.want || resp.GetCrErrmsg() != tc.err.Error() {
				t.Errorf("failure(%v) = success %v, errno %d, %q; want errno %d", tc.err, resp.GetSuccess(), resp.GetCrErrno(), resp.GetCrErrmsg(), tc.want)
			}
		})
	}
}

package criurpc

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/buildinfo"
	"github.com/crsub/crsub/internal/procfs"
)

// The CRIU release whose interface crsub answers. Runtimes compare it
// with what they need (runc wants 3.0 for the VERSION request itself,
// 3.11 for external namespaces, 3.14 for cgroup v2, 3.16 for LSM options;
// podman 3.11, and 3.16 for pods), and turn features off below them.
const (
	InterfaceMajor = 4
	InterfaceMinor = 2
)

// version is the VERSION answer: no gitid, which go-criu and runc would
// take for a development snapshot of the next release.
func version() *rpcpb.CriuVersion {
	return &rpcpb.CriuVersion{
		MajorNumber: ptr(int32(InterfaceMajor)),
		MinorNumber: ptr(int32(InterfaceMinor)),
		Name:        ptr("crsub " + buildinfo.Version),
	}
}

// Features answers a FEATURE_CHECK for crsub, as CRIU does: every feature
// is reported, true for those asked about that crsub has. Memory tracking
// is what a runtime checks before a pre-dump: crsub's pre-dump and the
// dump against it work without it (pages are compared), so it answers yes.
func features(asked *rpcpb.CriuFeatures) *rpcpb.CriuFeatures {
	return &rpcpb.CriuFeatures{
		MemTrack:   ptr(asked.GetMemTrack()),
		LazyPages:  ptr(false),
		PidfdStore: ptr(false),
	}
}

// Feature says whether crsub has a feature `criu check --feature NAME`
// asks about; an error for a name crsub does not know.
func Feature(name string) (bool, error) {
	switch name {
	case "mem_dirty_track":
		return true, nil
	case "uffd", "uffd-noncoop", "lazy_pages", "pidfd_store", "network-lock-nftables":
		// Lazy pages and a pidfd store are not crsub's; its own
		// nftables lock is not CRIU's --network-lock nft.
		return false, nil
	}
	return false, fmt.Errorf("feature %q is unknown to crsub", name)
}

// minKernel is the oldest kernel crsub runs on.
var minKernel = [2]int{6, 7}

// check answers CHECK: whether this kernel and crsub's privileges are
// enough for crsub to checkpoint and restore.
func check() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return os.NewSyscallError("uname", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	if v, ok := kernelVersion(release); !ok || v[0] < minKernel[0] || v[0] == minKernel[0] && v[1] < minKernel[1] {
		return fmt.Errorf("kernel %s: crsub needs Linux %d.%d or newer", release, minKernel[0], minKernel[1])
	}
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil {
		return err
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, {unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE"}, {unix.CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE"}} {
		if st.CapEff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("crsub lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// kernelVersion reads "6.18.0-rc1" as {6, 18}.
func kernelVersion(release string) ([2]int, bool) {
	major, rest, ok := strings.Cut(release, ".")
	if !ok {
		return [2]int{}, false
	}
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	return [2]int{a, b}, err1 == nil && err2 == nil
}

package ns

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// hostMountinfo is this machine's kind of host: an ext4 root, private
// mounts, a tmpfs zdtm's ns flavour bind-mounts as a container's /dev, and
// the test root bind-mounted (a shared one: /run/netns).
const hostMountinfo = `21 26 0:20 / /proc rw,relatime - proc proc rw
23 26 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334744k,nr_inodes=3083686,mode=755
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
53 26 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard
60 26 0:50 / /tmp/criu-root-x/dev rw,relatime - tmpfs criu-test-dev rw
61 26 254:0 /work/criu/test /tmp/criu-root-x/root/root rw,relatime - ext4 /dev/vda rw,discard
`

func parseMounts(t *testing.T, s string) []procfs.Mount {
	t.Helper()
	ms, err := procfs.ParseMountinfo(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestPlanMounts(t *testing.T) {
	dev := unix.Mkdev
	tests := []struct {
		name    string
		inside  string
		missing []string // external paths exists denies
		want    []ckpt.Mount
		wantErr string
	}{{
		name: "zdtm ns flavour",
		inside: `98 72 254:0 /work/criu/test / rw,relatime - ext4 /dev/vda rw,discard
99 98 0:50 / /dev rw,relatime - tmpfs criu-test-dev rw
101 98 0:60 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
102 98 0:61 / /run rw,relatime - tmpfs zdtm_run rw,inode64
103 99 0:62 / /dev/pts rw,relatime - devpts pts rw,mode=666,ptmxmode=666
`,
		want: []ckpt.Mount{
			{ID: 98, Path: "/", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/work/criu/test", Flags: []string{"relatime"},
				Options: "rw,discard", External: "/work/criu/test"},
			{ID: 99, Parent: 98, Path: "/dev", Dev: dev(0, 50), FSType: "tmpfs", Source: "criu-test-dev", Root: "/", Flags: []string{"relatime"},
				Options: "rw", External: "/tmp/criu-root-x/dev"},
			{ID: 101, Parent: 98, Path: "/proc", Dev: dev(0, 60), FSType: "proc", Source: "proc", Root: "/",
				Flags: []string{"nosuid", "nodev", "noexec", "relatime"}, Options: "rw"},
			{ID: 102, Parent: 98, Path: "/run", Dev: dev(0, 61), FSType: "tmpfs", Source: "zdtm_run", Root: "/", Flags: []string{"relatime"}, Options: "rw,inode64"},
			{ID: 103, Parent: 99, Path: "/dev/pts", Dev: dev(0, 62), FSType: "devpts", Source: "pts", Root: "/", Flags: []string{"relatime"},
				Options: "rw,mode=666,ptmxmode=666"},
		},
	}, {
		name: "a path covered on the host falls back to a bind mount of it",
		inside: `98 72 254:0 /work/criu/test / ro,relatime - ext4 /dev/vda rw,discard
`,
		missing: []string{"/work/criu/test"},
		want: []ckpt.Mount{{ID: 98, Path: "/", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/work/criu/test",
			Flags: []string{"ro", "relatime"}, Options: "rw,discard", External: "/tmp/criu-root-x/root/root"}},
	}, {
		name: "parents first, peer groups and a bind of a tmpfs made inside",
		inside: `110 98 0:70 /sub /data/b rw shared:5 master:2 - tmpfs t rw
98 72 254:0 /srv/ct / rw - ext4 /dev/vda rw
105 98 0:70 / /data rw shared:2 - tmpfs t rw
106 98 0:71 / /mq rw unbindable - mqueue mqueue rw
`,
		want: []ckpt.Mount{
			{ID: 98, Path: "/", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/srv/ct", Options: "rw", External: "/srv/ct"},
			{ID: 105, Parent: 98, Path: "/data", Dev: dev(0, 70), FSType: "tmpfs", Source: "t", Root: "/", Options: "rw", Shared: 2},
			{ID: 106, Parent: 98, Path: "/mq", Dev: dev(0, 71), FSType: "mqueue", Source: "mqueue", Root: "/", Options: "rw", Unbindable: true},
			{ID: 110, Parent: 98, Path: "/data/b", Dev: dev(0, 70), FSType: "tmpfs", Source: "t", Root: "/sub", Options: "rw", Shared: 5, Master: 2},
		},
	}, {
		name: "roots removed: a bind of a file of the host's, a directory of a tmpfs made inside",
		inside: `98 72 254:0 /srv/ct / rw - ext4 /dev/vda rw
99 98 254:0 /srv/ct/f//deleted /g rw - ext4 /dev/vda rw
100 98 0:70 / /t rw - tmpfs t rw
101 100 0:70 /src//deleted /t/dst rw - tmpfs t rw
`,
		missing: []string{"/srv/ct/f"},
		want: []ckpt.Mount{
			{ID: 98, Path: "/", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/srv/ct", Options: "rw", External: "/srv/ct"},
			{ID: 99, Parent: 98, Path: "/g", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/srv/ct/f", Options: "rw", External: "/srv/ct/f", Deleted: true},
			{ID: 100, Parent: 98, Path: "/t", Dev: dev(0, 70), FSType: "tmpfs", Source: "t", Root: "/", Options: "rw"},
			{ID: 101, Parent: 100, Path: "/t/dst", Dev: dev(0, 70), FSType: "tmpfs", Source: "t", Root: "/src", Options: "rw", Deleted: true},
		},
	}, {
		name:    "overlay made inside",
		inside:  "98 72 0:80 / / rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n",
		wantErr: "mount of overlay at /: not supported: an overlay filesystem made in the namespace",
	}, {
		name:    "a disk mounted only inside",
		inside:  "98 72 254:0 / / rw - ext4 /dev/vda rw\n99 98 8:1 / /mnt rw - xfs /dev/sdb1 rw\n",
		wantErr: "mount of xfs at /mnt: not supported: a filesystem made in the namespace that crsub cannot make anew",
	}, {
		name:   "an external mount shared with the host",
		inside: "98 72 254:0 / / rw - ext4 /dev/vda rw\n99 98 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n",
		want: []ckpt.Mount{
			{ID: 98, Path: "/", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/", Options: "rw", External: "/"},
			{ID: 99, Parent: 98, Path: "/run/netns", Dev: dev(254, 0), FSType: "ext4", Source: "/dev/vda", Root: "/run/netns", Options: "rw",
				External: "/run/netns", Shared: 1, SharedOutside: true},
		},
	}, {
		name:    "shared with the host, but not reachable there",
		inside:  "98 72 254:0 / / rw - ext4 /dev/vda rw\n99 98 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n",
		missing: []string{"/run/netns"},
		wantErr: "peer group 1 has mounts outside the namespace",
	}, {
		name:    "a tmpfs mounted only in parts",
		inside:  "98 72 254:0 / / rw - ext4 /dev/vda rw\n99 98 0:70 /a /x rw - tmpfs t rw\n100 98 0:70 /b /y rw - tmpfs t rw\n",
		wantErr: "its filesystem is mounted only in parts (/a at /x, /b at /y)",
	}, {
		name:    "two roots",
		inside:  "98 72 254:0 / / rw - ext4 /dev/vda rw\n99 73 0:70 / /x rw - tmpfs t rw\n",
		wantErr: "2 mounts without a parent",
	}}
	host := parseMounts(t, hostMountinfo)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exists := func(p string, _ *procfs.Mount) bool {
				for _, m := range tc.missing {
					if m == p {
						return false
					}
				}
				return true
			}
			got, err := planMounts(parseMounts(t, tc.inside), host, exists)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.HasPrefix(tc.wantErr, "mount of") {
					var me *MountError
					if !errors.As(err, &me) {
						t.Errorf("err is %T, want a *MountError", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("planMounts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExternalPaths(t *testing.T) {
	ms := []ckpt.Mount{
		{ID: 1, Path: "/", FSType: "ext4", External: "/srv/ct"},
		{ID: 2, Parent: 1, Path: "/data", FSType: "ext4", External: "/srv/data"},
		{ID: 3, Parent: 1, Path: "/data/logs", FSType: "ext4", External: "/srv/data/logs"},
		{ID: 4, Parent: 1, Path: "/run", FSType: "tmpfs"},
	}
	tmpRoot := []ckpt.Mount{{ID: 1, Path: "/", FSType: "tmpfs"}}
	tests := []struct {
		name     string
		ms       []ckpt.Mount
		root     string
		mountMap map[string]string
		want     map[int]string
		wantErr  string
	}{
		{name: "as recorded", ms: ms, want: map[int]string{1: "/srv/ct", 2: "/srv/data", 3: "/srv/data/logs"}},
		{name: "a new root", ms: ms, root: "/new/ct", want: map[int]string{1: "/new/ct", 2: "/srv/data", 3: "/srv/data/logs"}},
		{name: "a source moved, with what is below it", ms: ms, mountMap: map[string]string{"/srv/data": "/mnt/data"},
			want: map[int]string{1: "/srv/ct", 2: "/mnt/data", 3: "/mnt/data/logs"}},
		{name: "a mapping of what the image does not have", ms: ms, mountMap: map[string]string{"/srv/other": "/x"},
			wantErr: "a mount map is given for /srv/other, but no external mount of the image is there"},
		{name: "a root for a root made inside", ms: tmpRoot, root: "/new", wantErr: "the image's root is a tmpfs made in its mount namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := externalPaths(tc.ms, tc.root, tc.mountMap)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("externalPaths mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMountAttr(t *testing.T) {
	tests := []struct {
		flags      []string
		set, clear uint64
	}{
		{nil, unix.MOUNT_ATTR_STRICTATIME, unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC |
			unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW | unix.MOUNT_ATTR__ATIME},
		{[]string{"ro", "nosuid", "relatime"}, unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_RELATIME,
			unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW | unix.MOUNT_ATTR__ATIME},
		{[]string{"noatime", "nodev"}, unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOATIME,
			unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW | unix.MOUNT_ATTR__ATIME},
	}
	for _, tc := range tests {
		set, clear := mountAttr(tc.flags)
		if diff := cmp.Diff([2]uint64{tc.set, tc.clear}, [2]uint64{set, clear}); diff != "" {
			t.Errorf("mountAttr(%v) (-want +got):\n%s", tc.flags, diff)
		}
	}
}

func TestAttachOrder(t *testing.T) {
	tests := []struct {
		name string
		ms   []ckpt.Mount
		want []int
	}{{
		name: "as recorded",
		ms:   []ckpt.Mount{{ID: 1, Path: "/"}, {ID: 2, Parent: 1, Path: "/a"}, {ID: 3, Parent: 2, Path: "/a/b"}, {ID: 4, Parent: 1, Path: "/a"}},
		want: []int{0, 1, 2, 3},
	}, {
		name: "a mount point covered by a mount on the same parent before it",
		ms: []ckpt.Mount{{ID: 1, Path: "/"}, {ID: 2, Parent: 1, Path: "/a"}, {ID: 3, Parent: 2, Path: "/a/z"},
			{ID: 4, Parent: 1, Path: "/a/b/c"}},
		want: []int{0, 3, 1, 2},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, attachOrder(tc.ms)); diff != "" {
				t.Errorf("attachOrder (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCovered(t *testing.T) {
	// tempfs_overmounted's tree: a/b twice, a/b/c on the second, a twice
	// and a/b on the second a.
	ms := []ckpt.Mount{
		{ID: 1, Path: "/"},
		{ID: 2, Parent: 1, Path: "/a/b"}, {ID: 3, Parent: 2, Path: "/a/b"}, {ID: 4, Parent: 3, Path: "/a/b/c"},
		{ID: 5, Parent: 1, Path: "/a"}, {ID: 6, Parent: 5, Path: "/a"}, {ID: 7, Parent: 6, Path: "/a/b"},
	}
	want := map[int]bool{1: false, 2: true, 3: true, 4: true, 5: true, 6: false, 7: false}
	got := map[int]bool{}
	for i := range ms {
		got[ms[i].ID] = covered(ms, &ms[i])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("covered (-want +got):\n%s", diff)
	}
}

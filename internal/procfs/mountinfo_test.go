package procfs

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Mount
		wantErr string
	}{{
		name: "root and proc",
		in: "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534\n" +
			"22 27 0:21 / /proc rw,relatime - proc proc rw\n",
		want: []Mount{
			{ID: 27, ParentID: 1, Dev: unix.Mkdev(254, 0), Root: "/", MountPoint: "/", Options: "rw,relatime",
				FSType: "ext4", Source: "/dev/vda", SuperOptions: "rw,discard,resv_strict,resuid=65534,resgid=65534"},
			{ID: 22, ParentID: 27, Dev: unix.Mkdev(0, 21), Root: "/", MountPoint: "/proc", Options: "rw,relatime",
				FSType: "proc", Source: "proc", SuperOptions: "rw"},
		},
	}, {
		name: "optional fields and escapes",
		in:   `36 35 98:0 /mnt\040a /mnt/b\011c\134d rw,noatime master:1 shared:7 - ext3 /dev/root\040x rw,errors=continue` + "\n",
		want: []Mount{{ID: 36, ParentID: 35, Dev: unix.Mkdev(98, 0), Root: "/mnt a", MountPoint: "/mnt/b\tc\\d",
			Options: "rw,noatime", Optional: []string{"master:1", "shared:7"}, FSType: "ext3", Source: "/dev/root x",
			SuperOptions: "rw,errors=continue"}},
	}, {
		name: "empty super options",
		in:   "1 0 0:1 / / rw - rootfs rootfs \n",
		want: []Mount{{ID: 1, Dev: unix.Mkdev(0, 1), Root: "/", MountPoint: "/", Options: "rw", FSType: "rootfs", Source: "rootfs"}},
	},
		{name: "no separator", in: "1 0 0:1 / / rw ext4 x rw\n", wantErr: "line 1: "},
		{name: "too many fields", in: "1 0 0:1 / / rw - ext4 x rw extra\n", wantErr: "want id parent"},
		{name: "bad id", in: "x 0 0:1 / / rw - ext4 x rw\n", wantErr: "field 1 (mount ID)"},
		{name: "bad dev", in: "1 0 0x1 / / rw - ext4 x rw\n", wantErr: "field 3 (major:minor)"},
		{name: "hex dev", in: "1 0 fe:0 / / rw - ext4 x rw\n", wantErr: "field 3 (major:minor): major"},
		{name: "bad escape", in: `1 0 0:1 /\09 / rw - ext4 x rw` + "\n", wantErr: "field 4 (root)"},
		{name: "short escape", in: `1 0 0:1 / /a\04 rw - ext4 x rw` + "\n", wantErr: "truncated escape"},
		{name: "escape overflow", in: `1 0 0:1 / /a\777 rw - ext4 x rw` + "\n", wantErr: "field 5 (mount point)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMountinfo(strings.NewReader(tc.in))
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseMountinfo mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMountinfoTestdata(t *testing.T) {
	b := readTestdata(t, "mountinfo.txt")
	ms, err := ParseMountinfo(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != bytes.Count(b, []byte{'\n'}) {
		t.Errorf("%d mounts from %d lines", len(ms), bytes.Count(b, []byte{'\n'}))
	}
	root, ok := FindMount(ms, 27)
	if !ok || root.MountPoint != "/" || root.FSType != "ext4" || root.Dev != unix.Mkdev(254, 0) {
		t.Errorf("mount 27 = %+v, %v", root, ok)
	}
	if _, ok := FindMount(ms, 12345); ok {
		t.Error("FindMount found a missing id")
	}
}

func TestReadMountinfoSelf(t *testing.T) {
	ms, err := ReadMountinfo(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The mount holding the current directory must match stat's device.
	var st unix.Stat_t
	if err := unix.Stat(".", &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		found = found || m.Dev == st.Dev
	}
	if !found {
		t.Errorf("no mount with device %#x in %d mounts", st.Dev, len(ms))
	}
}

func TestMountPropagation(t *testing.T) {
	tests := []struct {
		name     string
		optional []string
		want     Propagation
		wantErr  string
	}{
		{name: "private"},
		{name: "shared", optional: []string{"shared:7"}, want: Propagation{Shared: 7}},
		{name: "slave and shared", optional: []string{"shared:3", "master:1"}, want: Propagation{Shared: 3, Master: 1}},
		{name: "slave seen from elsewhere", optional: []string{"master:4", "propagate_from:2"}, want: Propagation{Master: 4, PropagateFrom: 2}},
		{name: "unbindable", optional: []string{"unbindable"}, want: Propagation{Unbindable: true}},
		{name: "unknown fields skipped", optional: []string{"future:9", "nocolon", "shared:2"}, want: Propagation{Shared: 2}},
		{name: "bad group", optional: []string{"shared:x"}, wantErr: `optional field "shared:x"`},
		{name: "group zero", optional: []string{"master:0"}, wantErr: "not a peer group"},
		{name: "negative group", optional: []string{"master:-3"}, wantErr: "not a peer group"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Mount{ID: 5, Optional: tc.optional}
			got, err := m.Propagation()
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Propagation mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

package criurpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/sys"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// The inventory is CRIU's: its magic alone, then a length-prefixed entry,
// whose images version no CRIU restores.
func TestInventory(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := writeInventory(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(inventoryName)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 || binary.LittleEndian.Uint32(b) != inventoryMagic {
		t.Fatalf("inventory.img starts % x; want the inventory magic", b[:min(len(b), 8)])
	}
	if n := binary.LittleEndian.Uint32(b[4:]); int(n) != len(b)-8 {
		t.Fatalf("entry of %d bytes in %d", n, len(b)-8)
	}
	var e rpcpb.InventoryEntry
	if err := proto.Unmarshal(b[8:], &e); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&rpcpb.InventoryEntry{ImgVersion: ptr(uint32(0))}, &e, cmpProto); diff != "" {
		t.Errorf("inventory entry (-want +got):\n%s", diff)
	}
}

// container is the inventory of a container's image as podman's runc
// makes it: a root and files bind-mounted from outside, a cgroup
// hierarchy's mount of the container's cgroup, a proc made anew, and its
// own namespaces.
func container(kinds ...string) *ckpt.Inventory {
	const old = "/run/containers/storage/overlay-containers/OLD/userdata"
	inv := &ckpt.Inventory{}
	for _, k := range kinds {
		n := &ckpt.NamespaceView{Namespace: ckpt.Namespace{Kind: k}}
		if k == ckpt.NamespaceMnt {
			n.Namespace.Mnt = &ckpt.MountNamespace{Mounts: []ckpt.Mount{
				{ID: 1, Path: "/", FSType: "overlay", Root: "/", External: "/var/lib/containers/storage/overlay/L/merged"},
				{ID: 2, Parent: 1, Path: "/proc", FSType: "proc", Root: "/"},
				{ID: 3, Parent: 1, Path: "/etc/hosts", FSType: "ext4", Root: old + "/hosts", File: true, External: old + "/hosts"},
				{ID: 4, Parent: 1, Path: "/etc/hostname", FSType: "ext4", Root: old + "/hostname", File: true, External: old + "/hostname"},
				{ID: 5, Parent: 1, Path: "/sys/fs/cgroup/cpu", FSType: "cgroup", Options: "rw,cpu", Root: "/libpod_parent/libpod-OLD",
					External: "/sys/fs/cgroup/cpu/libpod_parent/libpod-OLD"},
				{ID: 6, Parent: 1, Path: "/sys/fs/cgroup/systemd", FSType: "cgroup", Options: "rw,xattr,name=systemd", Root: "/libpod_parent/libpod-OLD",
					External: "/sys/fs/cgroup/systemd/libpod_parent/libpod-OLD"},
				{ID: 7, Parent: 1, Path: "/sys/fs/cgroup/named", FSType: "cgroup", Options: "rw,name=other", Root: "/", External: "/tmp/other"},
			}}
		}
		inv.Namespaces = append(inv.Namespaces, n)
	}
	return inv
}

// ext_mnt entries move external mounts by their mount points; cgroup
// mounts follow cg_root instead of the runtime's entry for them.
func TestMountMap(t *testing.T) {
	const old, new = "/run/containers/storage/overlay-containers/OLD/userdata", "/run/containers/storage/overlay-containers/NEW/userdata"
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name   string
		inv    *ckpt.Inventory
		ext    []ExtMount
		cgroot map[string]string
		want   map[string]string
	}{
		{name: "restored in place", inv: container(ckpt.NamespaceMnt),
			ext:    []ExtMount{{"/etc/hosts", old + "/hosts"}, {"/dev/null", "/dev/null"}, {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu/libpod_parent/conmon"}},
			cgroot: map[string]string{"cpu": "/libpod_parent/libpod-OLD", "": "/libpod_parent/libpod-OLD"}},
		{name: "under another name", inv: container(ckpt.NamespaceMnt),
			ext: []ExtMount{{"/etc/hosts", new + "/hosts"}, {"/etc/hostname", new + "/hostname"}, {"/dev/null", "/dev/null"},
				{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu/libpod_parent/conmon"}},
			cgroot: map[string]string{"cpu": "/libpod_parent/libpod-NEW", "name=systemd": "/libpod_parent/libpod-NEW", "name=other": "/"},
			want: map[string]string{
				old + "/hosts":    new + "/hosts",
				old + "/hostname": new + "/hostname",
				"/sys/fs/cgroup/cpu/libpod_parent/libpod-OLD":     "/sys/fs/cgroup/cpu/libpod_parent/libpod-NEW",
				"/sys/fs/cgroup/systemd/libpod_parent/libpod-OLD": "/sys/fs/cgroup/systemd/libpod_parent/libpod-NEW",
			}},
		{name: "every hierarchy's root", inv: container(ckpt.NamespaceMnt), cgroot: map[string]string{"": "/x"},
			want: map[string]string{
				"/sys/fs/cgroup/cpu/libpod_parent/libpod-OLD":     "/sys/fs/cgroup/cpu/x",
				"/sys/fs/cgroup/systemd/libpod_parent/libpod-OLD": "/sys/fs/cgroup/systemd/x",
			}},
		{name: "a tree in crsub's mount namespace", inv: container(), ext: []ExtMount{{"/etc/hosts", "/h"}}},
	} {
		if diff := cmp.Diff(tc.want, mountMap(tc.inv, tc.ext, tc.cgroot, log)); diff != "" {
			t.Errorf("%s: mountMap (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestContainerRoot(t *testing.T) {
	madeAnew := container(ckpt.NamespaceMnt)
	madeAnew.Namespaces[0].Namespace.Mnt.Mounts[0].External = ""
	for _, tc := range []struct {
		name, root string
		inv        *ckpt.Inventory
		want       string
		refused    bool
	}{
		{name: "none", inv: container()},
		{name: "crsub's own", root: "/", inv: container()},
		{name: "a container's", root: t.TempDir(), inv: container(ckpt.NamespaceMnt), want: "set"},
		{name: "a tree in crsub's mount namespace", root: t.TempDir(), inv: container(), refused: true},
		{name: "a root made in the namespace", root: t.TempDir(), inv: madeAnew, refused: true},
		{name: "missing", root: "/nonexistent", inv: container(ckpt.NamespaceMnt), refused: true},
	} {
		var opts restart.Options
		err := containerRoot(&opts, tc.inv, tc.root)
		var re *RefusedError
		if tc.refused != (errors.As(err, &re) && re.Field == "root") {
			t.Errorf("%s: containerRoot = %v; refused %v", tc.name, err, tc.refused)
			continue
		}
		if want := map[bool]string{true: tc.root, false: ""}[tc.want == "set"]; opts.Root != want {
			t.Errorf("%s: Root = %q; want %q", tc.name, opts.Root, want)
		}
	}
}

// The namespaces a runtime passes replace the image's; crsub's own pass
// for an image without one of the kind; others are refused.
func TestSupplyNamespaces(t *testing.T) {
	made, err := sys.NewNetNS()
	if err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	defer made.Close()
	other := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), made.Int())
	for _, tc := range []struct {
		name    string
		inv     *ckpt.Inventory
		given   []suppliedNamespace
		want    map[string]substitute.Namespace
		refused string
	}{
		{name: "podman's network namespace", inv: container(ckpt.NamespaceNet, ckpt.NamespaceMnt),
			given: []suppliedNamespace{{"inherit_fd", "net", other}}, want: map[string]substitute.Namespace{"net": {Path: other}}},
		{name: "crsub's own, for a tree in it", inv: container(ckpt.NamespaceMnt),
			given: []suppliedNamespace{{"join_ns", "net", "/proc/self/ns/net"}, {"join_ns", "uts", "/proc/self/ns/uts"}}},
		{name: "another, for a tree in crsub's", inv: container(ckpt.NamespaceMnt),
			given: []suppliedNamespace{{"inherit_fd", "net", other}}, refused: "inherit_fd"},
		{name: "a pid namespace", inv: container(ckpt.NamespacePid),
			given: []suppliedNamespace{{"join_ns", "pid", "/proc/self/ns/pid"}}, refused: "join_ns"},
		{name: "missing", inv: container(ckpt.NamespaceNet), given: []suppliedNamespace{{"join_ns", "net", "/nonexistent"}}, refused: "join_ns"},
	} {
		var opts restart.Options
		err := supplyNamespaces(&opts, tc.inv, tc.given)
		var re *RefusedError
		if tc.refused != "" {
			if !errors.As(err, &re) || re.Field != tc.refused {
				t.Errorf("%s: supplyNamespaces = %v; want %s refused", tc.name, err, tc.refused)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, opts.Namespaces); diff != "" {
			t.Errorf("%s: Namespaces (-want +got):\n%s", tc.name, diff)
		}
		if opts.NetworkAsGiven != (tc.want["net"] != substitute.Namespace{}) {
			t.Errorf("%s: NetworkAsGiven = %v", tc.name, opts.NetworkAsGiven)
		}
	}
}

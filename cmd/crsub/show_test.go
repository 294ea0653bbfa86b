package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/crsub/crsub/ckpt"
)

// sampleImage writes an image with one process of each record kind and
// returns it with the inventory `show --json` must report.
func sampleImage(t *testing.T) ([]byte, *ckpt.Inventory) {
	t.Helper()
	hdr := ckpt.Header{Arch: "amd64", KernelRelease: "6.18.44", PageSize: 4096, Created: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), Writer: "crsub test", XStateSize: 2432, XFeatures: 0xe7}
	tree := ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 4242, Pgid: 4242, Sid: 100, Tids: []int{4242}, Comm: "logger"}}}
	proc := ckpt.Process{Pid: 4242, Comm: "logger", Cwd: "/srv", Root: "/", Umask: 0o27, Rlimits: []ckpt.Rlimit{{Resource: 7, Cur: 1024, Max: 4096}}}
	thread := ckpt.Thread{Pid: 4242, Tid: 4242, Regs: make([]uint64, 27), XState: []byte{1, 2, 3}, SigMask: 1 << 1, Syscall: &ckpt.InterruptedSyscall{Nr: 0, Ret: -512}}
	mm := ckpt.MM{Pid: 4242, StartBrk: 0x1000000, Brk: 0x1021000, Exe: ckpt.FileIdentity{Path: "/usr/bin/logger", Inode: 12}}
	vma := ckpt.VMA{Pid: 4242, Start: 0x1000000, End: 0x1021000, Prot: 3, Flags: 0x22, Kind: ckpt.VMAHeap}
	pagesRec := ckpt.Pages{Pid: 4242, VMAStart: 0x1000000, Runs: []ckpt.PageRun{{Index: 0, Count: 2}}}
	pipe := ckpt.Pipe{Inode: 777, Size: 65536}
	pipeEnd := ckpt.File{Kind: ckpt.FilePipe, PipeEnd: "read"}
	logFile := ckpt.File{Kind: ckpt.FileRegular, Path: "/var/log/app.log", Flags: os.O_WRONLY | os.O_APPEND, Pos: 120}
	sig := ckpt.Signals{Pid: 4242, Actions: []ckpt.SigAction{{Signo: 10, Handler: 0x401000, Flags: 0x4000000}}}

	var buf bytes.Buffer
	w, err := ckpt.NewWriter(&buf, hdr)
	if err != nil {
		t.Fatal(err)
	}
	pref, mref, piperef, endref, logref := w.NewObjref(), w.NewObjref(), w.NewObjref(), w.NewObjref(), w.NewObjref()
	pages := bytes.Repeat([]byte{0xab}, 2*4096)
	for i, err := range []error{
		w.Write(ckpt.TypeTree, 0, nil, &tree),
		w.Write(ckpt.TypeProcess, pref, nil, &proc),
		w.Write(ckpt.TypeThread, 0, []ckpt.Objref{pref}, &thread),
		w.Write(ckpt.TypeMM, mref, []ckpt.Objref{pref}, &mm),
		w.Write(ckpt.TypeVMA, 0, []ckpt.Objref{mref}, &vma),
		w.WriteWithPayload(ckpt.TypePages, 0, []ckpt.Objref{mref}, &pagesRec, int64(len(pages)), func(pw io.Writer) error { _, err := pw.Write(pages); return err }),
		w.WriteWithPayload(ckpt.TypePipe, piperef, nil, &pipe, 5, func(pw io.Writer) error { _, err := pw.Write([]byte("queue")); return err }),
		w.Write(ckpt.TypeFile, endref, []ckpt.Objref{piperef}, &pipeEnd),
		w.Write(ckpt.TypeFile, logref, nil, &logFile),
		w.Write(ckpt.TypeFd, 0, []ckpt.Objref{pref, logref}, &ckpt.Fd{Pid: 4242, Fd: 1, File: logref}),
		w.Write(ckpt.TypeFd, 0, []ckpt.Objref{pref, endref}, &ckpt.Fd{Pid: 4242, Fd: 0, Cloexec: true, File: endref}),
		w.Write(ckpt.TypeSignals, 0, []ckpt.Objref{pref}, &sig),
		w.Close(),
	} {
		if err != nil {
			t.Fatalf("writing step %d: %v", i, err)
		}
	}
	want := &ckpt.Inventory{
		Header: hdr, Version: "1.0", Tree: tree, Bytes: int64(buf.Len()),
		Processes: []*ckpt.ProcessView{{
			Process: proc, Threads: []ckpt.Thread{thread}, MM: &mm, VMAs: []ckpt.VMAView{{VMA: vma, Stored: 2}}, Signals: &sig, PagesStored: 2,
			Fds: []ckpt.FdView{
				{Fd: 0, Cloexec: true, Objref: endref, File: pipeEnd, Pipe: &pipe, Buffered: 5},
				{Fd: 1, Objref: logref, File: logFile},
			},
		}},
	}
	return buf.Bytes(), want
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestShowJSONRoundTrip(t *testing.T) {
	img, want := sampleImage(t)
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "show", "--json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got ckpt.Inventory
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &got, cmpopts.IgnoreUnexported(ckpt.ProcessView{})); diff != "" {
		t.Errorf("show --json (-want +got):\n%s", diff)
	}
}

func TestShowHuman(t *testing.T) {
	img, _ := sampleImage(t)
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "show", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"xstate 2432 bytes (xfeatures 0xe7)",
		"Process 4242 (logger)",
		"umask 0027",
		"in syscall 0, returned -512",
		"heap",
		"2/33",
		"pipe:[777] read end, 5 bytes buffered",
		"/var/log/app.log",
		"wronly,append",
		"SIGUSR1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runCLI(t, "show", "--records", path)
	if code != 0 || !strings.Contains(out, "pages") || !strings.Contains(out, "8192") {
		t.Errorf("show --records (exit %d):\n%s", code, out)
	}
}

func TestShowDamaged(t *testing.T) {
	img, _ := sampleImage(t)
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, img[:len(img)-30], 0o600)
	flipped := filepath.Join(dir, "flipped")
	bad := bytes.Clone(img)
	bad[bytes.Index(bad, []byte("queue"))] ^= 0x20
	os.WriteFile(flipped, bad, 0o600)
	for _, tc := range []struct{ path, want string }{
		{truncated, "record 13"},
		{flipped, "record 7 (pipe)"},
	} {
		_, errOut, code := runCLI(t, "show", tc.path)
		if code != 1 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "offset") {
			t.Errorf("show %s: exit %d, stderr %q; want exit 1 naming %q and an offset", filepath.Base(tc.path), code, errOut, tc.want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"show"}, 2},
		{[]string{"show", "--bogus", "x"}, 2},
		{[]string{"show", "--help"}, 0},
		{[]string{"version"}, 0},
		{[]string{"show", "/nonexistent/image"}, 1},
		{[]string{"checkpoint", "--pid", "1", "-o", "-", "--copy-on-write"}, 2},
		{[]string{"checkpoint", "--pid", "1", "-o", "-", "--leave-running", "--copy-on-write", "--pre-copy"}, 2},
	} {
		if _, _, code := runCLI(t, tc.args...); code != tc.code {
			t.Errorf("crsub %v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

// The namespaces of an image are listed with what they hold, and each
// process says which it is in.
func TestShowNamespaces(t *testing.T) {
	hdr := ckpt.Header{Arch: "amd64", KernelRelease: "6.18.44", PageSize: 4096, Created: time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC), Writer: "crsub test"}
	tree := ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 77, Pgid: 77, Sid: 77, Tids: []int{77}, Comm: "ctr"}}}
	netns := ckpt.Namespace{Kind: ckpt.NamespaceNet, Inode: 4026532001, Pid: 77}
	mntns := ckpt.Namespace{Kind: ckpt.NamespaceMnt, Inode: 4026532002, Pid: 77, Mnt: &ckpt.MountNamespace{Mounts: []ckpt.Mount{
		{ID: 30, Path: "/", FSType: "ext4", Source: "/dev/vda", Root: "/", External: "/srv/ctr/rootfs"},
		{ID: 31, Parent: 30, Path: "/tmp", FSType: "tmpfs", Source: "tmpfs", Root: "/", Flags: []string{"nosuid", "nodev"}, Shared: 4, Dev: 0x2f},
	}}}
	userns := ckpt.Namespace{Kind: ckpt.NamespaceUser, Inode: 4026532005, Pid: 77, User: &ckpt.UserNamespace{
		UidMap: []ckpt.IDMap{{Inside: 0, Outside: 100000, Count: 65536}}, GidMap: []ckpt.IDMap{{Inside: 0, Outside: 100000, Count: 1}, {Inside: 1, Outside: 200000, Count: 10}}, Setgroups: "deny"}}
	utsns := ckpt.Namespace{Kind: ckpt.NamespaceUTS, Inode: 4026532003, Pid: 77, Owner: 4026532005, UTS: &ckpt.UTSNamespace{Hostname: "box"}}
	ipcns := ckpt.Namespace{Kind: ckpt.NamespaceIPC, Inode: 4026532004, Pid: 77, IPC: &ckpt.IPCNamespace{Sysctls: map[string]string{"kernel/shmmax": "1"}}}
	network := ckpt.Network{
		Links: []ckpt.NetLink{{Index: 1, Name: "lo", Kind: ckpt.LinkLoopback, Builtin: true, Flags: 9, MTU: 65536},
			{Index: 2, Name: "eth0", Kind: ckpt.LinkVeth, Flags: 0x1003, MTU: 1500, MAC: "02:42:ac:11:00:02", Peer: &ckpt.VethPeer{Where: ckpt.PeerHost, Name: "veth9"}}},
		Addresses: []ckpt.NetAddress{{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.2/24"), ValidLifetime: ^uint32(0), PreferredLifetime: ^uint32(0)}},
		Routes:    []ckpt.NetRoute{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1"), Link: "eth0", Table: 254, Protocol: 3, Type: 1}},
		Nftables:  "table inet f {\n}\n",
	}
	files := ckpt.MountFiles{Dev: 0x2f, Size: 1024, Files: 3}
	seg := ckpt.SysVSegment{SysVShm: ckpt.SysVShm{ID: 5}, Size: 0}

	var buf bytes.Buffer
	w, err := ckpt.NewWriter(&buf, hdr)
	if err != nil {
		t.Fatal(err)
	}
	usref, nref, mref, uref, iref, pref := w.NewObjref(), w.NewObjref(), w.NewObjref(), w.NewObjref(), w.NewObjref(), w.NewObjref()
	proc := ckpt.Process{Pid: 77, Comm: "ctr", Cwd: "/", Root: "/", Namespaces: map[string]ckpt.Objref{"user": usref, "net": nref, "mnt": mref, "uts": uref, "ipc": iref}}
	for i, err := range []error{
		w.Write(ckpt.TypeTree, 0, nil, &tree),
		w.Write(ckpt.TypeNamespace, usref, nil, &userns),
		w.Write(ckpt.TypeNamespace, nref, nil, &netns),
		w.Write(ckpt.TypeNamespace, mref, nil, &mntns),
		w.Write(ckpt.TypeNamespace, uref, nil, &utsns),
		w.Write(ckpt.TypeNamespace, iref, nil, &ipcns),
		w.Write(ckpt.TypeProcess, pref, []ckpt.Objref{usref, nref, mref, uref, iref}, &proc),
		w.Write(ckpt.TypeNetwork, 0, []ckpt.Objref{nref}, &network),
		w.WriteWithPayload(ckpt.TypeMountFiles, 0, []ckpt.Objref{mref}, &files, 0, func(io.Writer) error { return nil }),
		w.WriteWithPayload(ckpt.TypeSysVShm, w.NewObjref(), []ckpt.Objref{iref}, &seg, 0, func(io.Writer) error { return nil }),
		w.Close(),
	} {
		if err != nil {
			t.Fatalf("writing step %d: %v", i, err)
		}
	}
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "show", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"net 4026532001, made with pid 77",
		"eth0  veth      up     1500   02:42:ac:11:00:02  -       host veth9",
		"10.0.0.2/24",
		"0.0.0.0/0  unicast  10.0.0.1  eth0  main   boot",
		"nftables (2 lines)",
		"/tmp         tmpfs  tmpfs     /     nosuid,nodev  shared:4     made anew, 3 file(s), 1024 bytes stored",
		"external /srv/ctr/rootfs",
		"user 4026532005, made with pid 77: uid map 0:100000:65536, gid map 0:100000:1 1:200000:10, setgroups deny",
		`uts 4026532003, made with pid 77, owned by user 4026532005: hostname "box"`,
		"ipc 4026532004, made with pid 77: 1 System V segment(s), 0 semaphore set(s), 0 message queue(s), 1 setting(s)",
		"namespaces: user 4026532005, uts 4026532003, ipc 4026532004, net 4026532001, mnt 4026532002",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runCLI(t, "show", "--json", path)
	var inv ckpt.Inventory
	if err := json.Unmarshal([]byte(out), &inv); code != 0 || err != nil {
		t.Fatalf("show --json: exit %d, %v", code, err)
	}
	want := []*ckpt.NamespaceView{{Objref: usref, Namespace: userns}, {Objref: nref, Namespace: netns, Network: &network}, {Objref: mref, Namespace: mntns, MountFiles: []ckpt.MountFiles{files}},
		{Objref: uref, Namespace: utsns}, {Objref: iref, Namespace: ipcns, SysVShm: []ckpt.SysVSegment{seg}}}
	if diff := cmp.Diff(want, inv.Namespaces, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("show --json namespaces (-want +got):\n%s", diff)
	}
}

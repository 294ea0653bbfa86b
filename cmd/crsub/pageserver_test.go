package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/criurpc"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/crtest"
)

// A live migration as go-criu's phaul makes one: a page server takes each
// dump of the counter over one socket pair into a directory of its own
// (PAGE_SERVER_CHLD), a pre-dump then the dump incremental to it; the
// restore is made from the page server's last directory, with the dump's
// other files linked in.
func TestSwrkPageServer(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"local/0", "local/1", "remote/0", "remote/1"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	open := func(d string) *os.File {
		f, err := os.Open(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	client, server := os.NewFile(uintptr(fds[0]), "client"), os.NewFile(uintptr(fds[1]), "server")
	defer client.Close()
	defer server.Close()
	p, out := startCounter(t, dir)
	pid := p.Pid
	crtest.WaitBlocked(t, pid)
	defer unix.Kill(pid, unix.SIGKILL)

	for i, typ := range []rpcpb.CriuReqType{rpcpb.CriuReqType_PRE_DUMP, rpcpb.CriuReqType_DUMP} {
		// Each side's socket is the runtime's fd, as its images
		// directory is.
		ps := startSwrk(t)
		opts := &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(open(fmt.Sprintf("remote/%d", i)).Fd())), LogFile: ptr("ps.log"), LogLevel: ptr(int32(4)),
			Ps: &rpcpb.CriuPageServerInfo{Fd: ptr(int32(server.Fd()))}}
		if i > 0 {
			opts.ParentImg = ptr("../0")
		}
		resp := ps.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_PAGE_SERVER_CHLD.Enum(), Opts: opts})
		if !resp.GetSuccess() || resp.GetPs().GetPid() <= 0 {
			t.Fatalf("PAGE_SERVER_CHLD answered %v", resp)
		}
		if st := ps.done(); st != 0 {
			t.Fatalf("swrk exited %d after PAGE_SERVER_CHLD", st)
		}
		rt := startSwrk(t)
		opts = &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(open(fmt.Sprintf("local/%d", i)).Fd())), Pid: ptr(int32(pid)), LogFile: ptr("dump.log"), LogLevel: ptr(int32(4)),
			Ps: &rpcpb.CriuPageServerInfo{Fd: ptr(int32(client.Fd()))}}
		if i > 0 {
			opts.ParentImg = ptr(filepath.Join(dir, "local/0"))
		}
		resp = rt.call(&rpcpb.CriuReq{Type: typ.Enum(), Opts: opts})
		if !resp.GetSuccess() {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("local/%d/dump.log", i)))
			c, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("remote/%d/ps.log", i)))
			t.Fatalf("%s answered %v\n%s\n%s", typ, resp, b, c)
		}
		rt.done()
	}
	p.Wait()

	local, err := os.Stat(filepath.Join(dir, "local/1", criurpc.SentImageName))
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(filepath.Join(dir, "local/0", criurpc.SentImageName))
	if err != nil {
		t.Fatal(err)
	}
	if local.Size() >= first.Size()/2 {
		t.Errorf("the dump after the pre-dump is %d bytes, the pre-dump %d: not incremental", local.Size(), first.Size())
	}
	f, err := os.Open(filepath.Join(dir, "remote/1", criurpc.ImageName))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ckpt.NewReader(bufio.NewReader(f))
	f.Close()
	if err != nil || rd.Header().Parent != "../0/"+criurpc.ImageName {
		t.Fatalf("the page server's image: %v; parent %q, want ../0/%s", err, rd.Header().Parent, criurpc.ImageName)
	}
	if err := os.Link(filepath.Join(dir, "local/1/inventory.img"), filepath.Join(dir, "remote/1/inventory.img")); err != nil {
		t.Fatal(err)
	}

	pw := openPipeWriter(t, out)
	rt := startSwrk(t, pw)
	pw.Close()
	resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(open("remote/1").Fd())), LogFile: ptr("restore.log"), LogLevel: ptr(int32(4)), RstSibling: ptr(true),
		InheritFd: []*rpcpb.InheritFd{{Key: ptr(fmt.Sprintf("pipe:[%d]", pipeInode(t, out))), Fd: ptr(int32(4))}},
	}})
	if !resp.GetSuccess() || resp.GetRestore().GetPid() != int32(pid) {
		b, _ := os.ReadFile(filepath.Join(dir, "remote/1/restore.log"))
		t.Fatalf("RESTORE answered %v\n%s", resp, b)
	}
	rt.done()
	restoredCounter(t, dir, pid, out)
}

// criu page-server and criu pre-dump/dump --page-server over TCP, the dump
// incremental to the pre-dump on both sides; a dump whose page server
// fails fails, and leaves the tree running.
func TestCriuPageServer(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"local0", "local1", "remote0", "remote1", "remote2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d string) string { return filepath.Join(dir, d) }
	pageServer := func(d string, args ...string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		if o, err := criu(append([]string{"page-server", "-D", at(d), "--address", "127.0.0.1", "--port", port, "-d"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("criu page-server -d: %v: %s", err, o)
		}
		return port
	}
	p, out := startCounter(t, dir)
	pid := p.Pid
	crtest.WaitBlocked(t, pid)
	defer unix.Kill(pid, unix.SIGKILL)

	port := pageServer("remote0")
	if o, err := criu("pre-dump", "-t", strconv.Itoa(pid), "-D", at("local0"), "--page-server", "--address", "127.0.0.1", "--port", port).CombinedOutput(); err != nil {
		t.Fatalf("criu pre-dump --page-server: %v: %s", err, o)
	}
	// A page server told of a parent it does not have refuses the dump.
	port = pageServer("remote1", "--prev-images-dir", "../nowhere")
	o, err := criu("dump", "-t", strconv.Itoa(pid), "-D", at("local1"), "--prev-images-dir", "../local0", "--page-server", "--address", "127.0.0.1", "--port", port).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "the page server: error: parent image") {
		t.Fatalf("criu dump to a page server without the parent: %v: %s", err, o)
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("the counter is gone after a failed dump: %v", err)
	}
	port = pageServer("remote2", "--prev-images-dir", "../remote0")
	if o, err := criu("dump", "-t", strconv.Itoa(pid), "-D", at("local1"), "--prev-images-dir", "../local0", "--page-server", "--address", "127.0.0.1", "--port", port).CombinedOutput(); err != nil {
		t.Fatalf("criu dump --page-server: %v: %s", err, o)
	}
	p.Wait()
	w := openPipeWriter(t, out)
	defer w.Close()
	cmd := criu("restore", "-D", at("remote2"), "-d", "--inherit-fd", "fd[3]:pipe:["+strconv.FormatUint(pipeInode(t, out), 10)+"]")
	cmd.ExtraFiles = []*os.File{w}
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("criu restore from the page server's directory: %v: %s", err, o)
	}
	restoredCounter(t, dir, pid, out)
}

// A migration on one machine restores at post-dump, while the original
// is still frozen: the init of a pid namespace of its own then takes
// another pid outside it (its own still held), pid 1 inside, as CRIU's.
func TestSwrkRestoreAtPostDump(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o700); err != nil {
		t.Fatal(err)
	}
	imagesDir, err := os.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer imagesDir.Close()
	// unshare's child is the init of the new namespace, and the tree.
	cmd := exec.Command("unshare", "--pid", "--fork", "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var init int
	for i := 0; i < 200 && init == 0; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		init, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if init == 0 {
		t.Fatal("no init in the new pid namespace")
	}
	crtest.WaitBlocked(t, init)

	var restored int
	rt := startSwrk(t)
	rt.on = func(script string) {
		if script != "post-dump" {
			return
		}
		rs := startSwrk(t)
		resp := rs.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{
			ImagesDirFd: ptr(int32(imagesDir.Fd())), LogFile: ptr("restore.log"), LogLevel: ptr(int32(4)), RstSibling: ptr(true)}})
		if !resp.GetSuccess() {
			b, _ := os.ReadFile(filepath.Join(images, "restore.log"))
			t.Errorf("RESTORE at post-dump answered %v\n%s", resp, b)
		}
		restored = int(resp.GetRestore().GetPid())
		rs.done()
	}
	resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(imagesDir.Fd())), Pid: ptr(int32(init)), LogFile: ptr("dump.log"), LogLevel: ptr(int32(4)), NotifyScripts: ptr(true)}})
	if !resp.GetSuccess() {
		b, _ := os.ReadFile(filepath.Join(images, "dump.log"))
		t.Fatalf("DUMP answered %v\n%s", resp, b)
	}
	rt.done()
	if restored <= 0 || restored == init {
		t.Fatalf("restored as pid %d, the original was %d: want another", restored, init)
	}
	defer unix.Kill(restored, unix.SIGKILL)
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", restored)); err != nil || string(comm) != "sleep\n" {
		t.Errorf("restored pid %d: comm %q, %v", restored, comm, err)
	}
	if nspid := crtest.Status(restored, "NSpid"); !strings.HasSuffix(nspid, "\t1") {
		t.Errorf("restored pid %d: NSpid %q, want 1 inside", restored, nspid)
	}
}

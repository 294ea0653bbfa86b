package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
	if h := imageHeader(t, filepath.Join(dir, "remote/1", criurpc.ImageName)); h.Parent != "../0/"+criurpc.ImageName {
		t.Fatalf("the page server's image names parent %q, want ../0/%s", h.Parent, criurpc.ImageName)
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

// criu page-server and criu pre-dump/dump --page-server over TCP, each
// dump incremental to the one before on both sides, the server writing into
// the dump's own directories as CRIU's snapshot tests run it; a dump whose
// page server fails fails, and leaves the tree running.
func TestCriuPageServer(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"a0", "a1", "b1", "c2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d string) string { return filepath.Join(dir, d) }
	pageServer := func(d string, args ...string) []string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		if o, err := criu(append([]string{"page-server", "-D", at(d), "--address", "127.0.0.1", "--port", port, "-d"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("criu page-server -d: %v: %s", err, o)
		}
		return []string{"--page-server", "--address", "127.0.0.1", "--port", port}
	}
	p, out := startCounter(t, dir)
	pid := strconv.Itoa(p.Pid)
	crtest.WaitBlocked(t, p.Pid)
	defer unix.Kill(p.Pid, unix.SIGKILL)
	alive := func(after string) {
		t.Helper()
		if err := unix.Kill(p.Pid, 0); err != nil {
			t.Fatalf("the counter is gone after %s: %v", after, err)
		}
	}

	if o, err := criu(append([]string{"pre-dump", "-t", pid, "-D", at("a0")}, pageServer("a0")...)...).CombinedOutput(); err != nil {
		t.Fatalf("criu pre-dump --page-server: %v: %s", err, o)
	}
	if o, err := criu("pre-dump", "-t", pid, "-D", at("a0"), "--prev-images-dir", "../a0").CombinedOutput(); err == nil || !strings.Contains(string(o), "is the images directory itself") {
		t.Fatalf("criu pre-dump incremental to the image it replaces: %v: %s", err, o)
	}
	alive("a refused pre-dump")
	// Told of no parent, the server finds the one the dump names, its own
	// image beside the dump's copy first.
	if o, err := criu(append([]string{"pre-dump", "-t", pid, "-D", at("a1"), "--prev-images-dir", "../a0"}, pageServer("a1")...)...).CombinedOutput(); err != nil {
		t.Fatalf("criu pre-dump --page-server, incremental: %v: %s", err, o)
	}
	if h := imageHeader(t, filepath.Join(at("a1"), criurpc.ImageName)); h.Parent != "../a0/"+criurpc.ImageName {
		t.Errorf("the page server's image names parent %q, want ../a0/%s", h.Parent, criurpc.ImageName)
	}
	// Told of a parent it does not have, it refuses the image.
	o, err := criu(append([]string{"dump", "-t", pid, "-D", at("b1"), "--prev-images-dir", "../a1"}, pageServer("b1", "--prev-images-dir", "../nowhere")...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "the page server: error: parent image") {
		t.Fatalf("criu dump to a page server without the parent: %v: %s", err, o)
	}
	alive("a failed dump")
	if o, err := criu(append([]string{"dump", "-t", pid, "-D", at("c2"), "--prev-images-dir", "../a1"}, pageServer("c2", "--prev-images-dir", "../a1")...)...).CombinedOutput(); err != nil {
		t.Fatalf("criu dump --page-server: %v: %s", err, o)
	}
	p.Wait()
	w := openPipeWriter(t, out)
	defer w.Close()
	cmd := criu("restore", "-D", at("c2"), "-d", "--inherit-fd", "fd[3]:pipe:["+strconv.FormatUint(pipeInode(t, out), 10)+"]")
	cmd.ExtraFiles = []*os.File{w}
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("criu restore from the page server's directory: %v: %s", err, o)
	}
	restoredCounter(t, dir, p.Pid, out)
}

// imageHeader reads the header of the image at path.
func imageHeader(t *testing.T, path string) ckpt.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := ckpt.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	return rd.Header()
}

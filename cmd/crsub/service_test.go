package main

import (
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
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/crtest"
)

// serviceCall sends req over a new connection to the service at sock and
// returns the response.
func serviceCall(t *testing.T, sock string, req *rpcpb.CriuReq) *rpcpb.CriuResp {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s: %v", req.GetType(), err)
	}
	resp := &rpcpb.CriuResp{}
	if err := proto.Unmarshal(buf[:n], resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// criu service runs in the background once listening (-d, its pid in the
// pidfile, \0 on the status fd) and serves each connection as a session
// of its own, the fds a request names being the connecting process's;
// SIGTERM stops it.
func TestCriuService(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	status, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer status.Close()
	cmd := criu("service", "-W", dir, "--address", "s.sock", "-d", "--pidfile", "pid", "-o", "service.log", "--status-fd", "3")
	cmd.ExtraFiles = []*os.File{w}
	out, err := cmd.CombinedOutput()
	w.Close()
	if err != nil {
		t.Fatalf("criu service -d: %v: %s", err, out)
	}
	b := make([]byte, 2)
	if n, err := status.Read(b); n != 1 || b[0] != 0 {
		t.Fatalf("status fd: %q, %v; want a \\0", b[:n], err)
	}
	pidText, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	service, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(service, unix.SIGKILL) })
	sock := filepath.Join(dir, "s.sock")

	if resp := serviceCall(t, sock, &rpcpb.CriuReq{Type: rpcpb.CriuReqType_VERSION.Enum()}); !resp.GetSuccess() || resp.GetVersion().GetMajorNumber() != criurpc.InterfaceMajor {
		t.Errorf("VERSION: %v", resp)
	}
	resp := serviceCall(t, sock, &rpcpb.CriuReq{Type: rpcpb.CriuReqType_CHECK.Enum(), Opts: &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(-1)), LogFile: ptr("/x/y.log")}})
	if resp.GetSuccess() || resp.GetCrErrno() != int32(syscall.EBADRQC) {
		t.Errorf("CHECK with a log file in a subdirectory: %v", resp)
	}

	// A dump and a restore of a process of the caller's, through the
	// images directory fd the caller names.
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o700); err != nil {
		t.Fatal(err)
	}
	imagesDir, err := os.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer imagesDir.Close()
	sleeper := exec.Command("sleep", "1000")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	crtest.WaitBlocked(t, sleeper.Process.Pid)
	opts := &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(imagesDir.Fd())), Pid: ptr(int32(sleeper.Process.Pid)), LogFile: ptr("dump.log"), LogLevel: ptr(int32(4))}
	if resp := serviceCall(t, sock, &rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: opts}); !resp.GetSuccess() {
		log, _ := os.ReadFile(filepath.Join(images, "dump.log"))
		t.Fatalf("DUMP: %v\n%s", resp, log)
	}
	sleeper.Wait()
	opts = &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(imagesDir.Fd())), LogFile: ptr("restore.log"), LogLevel: ptr(int32(4)), RstSibling: ptr(true)}
	resp = serviceCall(t, sock, &rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: opts})
	if !resp.GetSuccess() || int(resp.GetRestore().GetPid()) != sleeper.Process.Pid {
		log, _ := os.ReadFile(filepath.Join(images, "restore.log"))
		t.Fatalf("RESTORE: %v (want pid %d)\n%s", resp, sleeper.Process.Pid, log)
	}
	t.Cleanup(func() { unix.Kill(sleeper.Process.Pid, unix.SIGKILL) })
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(sleeper.Process.Pid) + "/comm"); err != nil || string(comm) != "sleep\n" {
		t.Errorf("restored: comm %q, %v", comm, err)
	}

	if err := unix.Kill(service, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if unix.Kill(service, 0) != nil {
			break
		}
		if i == 100 {
			t.Fatal("the service runs on 5 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is left after the service stopped: %v", err)
	}
}

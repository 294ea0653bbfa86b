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

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/crtest"
)

// counter counts in the file "count" every 10 ms, its stdout a pipe of the
// test's (as a container's stdio is a pipe of its runtime). On SIGUSR1 it
// checks 4 MiB of memory it filled, that it has its pid, and that it
// counted on, and says so on stdout.
const counter = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }
int main(void) {
	size_t n = 4 << 20;
	unsigned char *m = malloc(n);
	for (size_t i = 0; i < n; i++) m[i] = (unsigned char)(i * 7 + 3);
	pid_t me = getpid();
	int fd = open("count", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	signal(SIGUSR1, on_usr1);
	long ticks = 0, checked = 0;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		char buf[32];
		int len = snprintf(buf, sizeof buf, "%ld\n", ++ticks);
		pwrite(fd, buf, len, 0);
		if (usr1) {
			usr1 = 0;
			size_t bad = 0;
			for (size_t i = 0; i < n; i++) bad += m[i] != (unsigned char)(i * 7 + 3);
			printf("%s pid=%d ticks=%ld bad=%zu\n", bad == 0 && getpid() == me && ticks > checked ? "verified" : "corrupt", getpid(), ticks, bad);
			fflush(stdout);
			checked = ticks;
		}
		usleep(10000);
	}
}
`

// fakeRuntime plays a container runtime: it starts `crsub swrk 3` on one
// end of a SOCK_SEQPACKET pair and talks CRIU's RPC on the other.
type fakeRuntime struct {
	t    *testing.T
	conn *net.UnixConn
	cmd  *exec.Cmd
	// notified lists the NOTIFY scripts heard, with their pid as
	// "script:pid" where one came.
	notified []string
	// fail names a script to answer with notify_success false.
	fail string
	// on, if set, runs at each notification before it is answered.
	on func(script string)
}

// startSwrk starts crsub swrk with extra files from fd 4 on.
func startSwrk(t *testing.T, extra ...*os.File) *fakeRuntime {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	client, server := os.NewFile(uintptr(fds[0]), "client"), os.NewFile(uintptr(fds[1]), "server")
	defer server.Close()
	fc, err := net.FileConn(client)
	client.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "swrk", "3")
	cmd.Env = append(os.Environ(), asCrsub+"=1")
	cmd.ExtraFiles = append([]*os.File{server}, extra...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &fakeRuntime{t: t, conn: fc.(*net.UnixConn), cmd: cmd}
	t.Cleanup(func() { r.conn.Close(); r.cmd.Wait() })
	return r
}

func (r *fakeRuntime) send(req *rpcpb.CriuReq) {
	r.t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// call sends req and answers the notifications until the response comes.
func (r *fakeRuntime) call(req *rpcpb.CriuReq) *rpcpb.CriuResp {
	r.t.Helper()
	r.send(req)
	return r.response()
}

// response answers the notifications until the response comes.
func (r *fakeRuntime) response() *rpcpb.CriuResp {
	r.t.Helper()
	buf, oob := make([]byte, 1<<16), make([]byte, 128)
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			r.t.Fatalf("reading the response: %v", err)
		}
		resp := &rpcpb.CriuResp{}
		if err := proto.Unmarshal(buf[:n], resp); err != nil {
			r.t.Fatalf("response: %v", err)
		}
		if oobn > 0 {
			r.t.Errorf("%s came with an fd", resp.GetType())
		}
		if resp.GetType() != rpcpb.CriuReqType_NOTIFY {
			return resp
		}
		script := resp.GetNotify().GetScript()
		if resp.GetNotify().Pid != nil {
			script += ":" + strconv.Itoa(int(resp.GetNotify().GetPid()))
		}
		r.notified = append(r.notified, script)
		if r.on != nil {
			r.on(resp.GetNotify().GetScript())
		}
		r.send(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_NOTIFY.Enum(), NotifySuccess: ptr(resp.GetNotify().GetScript() != r.fail)})
	}
}

// done closes the runtime's end and returns crsub's exit status.
func (r *fakeRuntime) done() int {
	r.t.Helper()
	r.conn.CloseWrite()
	err := r.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return 0
}

// startCounter starts the counter in dir with its stdout on a pipe, and
// returns it and the pipe's read end.
func startCounter(t *testing.T, dir string) (*os.Process, *os.File) {
	t.Helper()
	bin := crtest.Build(t, counter)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	defer pw.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	p, err := os.StartProcess(bin, []string{bin}, &os.ProcAttr{Dir: dir, Files: []*os.File{null, pw, null}, Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	crtest.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "ready")); return err == nil }, "counter ready")
	return p, pr
}

func count(t *testing.T, dir string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "count"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// counting waits until the count goes on from where it is.
func counting(t *testing.T, dir string) {
	t.Helper()
	n := count(t, dir)
	crtest.WaitFor(t, func() bool { return count(t, dir) > n+2 }, "the count to go on")
}

// restoredCounter checks that the counter restored as pid counts on, and
// that it says on out, asked, that its memory and pid are its own.
func restoredCounter(t *testing.T, dir string, pid int, out *os.File) {
	t.Helper()
	counting(t, dir)
	unix.Kill(pid, unix.SIGUSR1)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "verified pid="+strconv.Itoa(pid)+" ") {
		t.Fatalf("the restored counter says %q (%v)", line, err)
	}
}

func pipeInode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A runtime's whole round: VERSION, then DUMP of a live process through
// crsub swrk with every notification, then RESTORE as the runtime's child
// with its stdout pipe inherited and its cgroup moved, the process
// counting on and checking itself.
func TestSwrkDumpRestore(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o700); err != nil {
		t.Fatal(err)
	}
	p, out := startCounter(t, dir)
	pid := p.Pid
	crtest.WaitBlocked(t, pid)

	rt := startSwrk(t)
	v := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_VERSION.Enum()})
	// go-criu's number: major*10000 + minor*100, which runc wants >= 30000.
	if got := v.GetVersion().GetMajorNumber()*10000 + v.GetVersion().GetMinorNumber()*100; !v.GetSuccess() || got < 31600 || v.GetVersion().Gitid != nil {
		t.Fatalf("VERSION answered %v: version %d", v, got)
	}
	if st := rt.done(); st != 0 {
		t.Fatalf("swrk exited %d after VERSION", st)
	}

	imagesDir, err := os.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer imagesDir.Close()
	rt = startSwrk(t)
	resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(imagesDir.Fd())), Pid: ptr(int32(pid)), LeaveRunning: ptr(false),
		LogFile: ptr("dump.log"), LogLevel: ptr(int32(4)), NotifyScripts: ptr(true),
		ShellJob: ptr(true), TcpEstablished: ptr(true), FileLocks: ptr(true), ExtUnixSk: ptr(true),
		ManageCgroups: ptr(true), ManageCgroupsMode: rpcpb.CriuCgMode_SOFT.Enum(), OrphanPtsMaster: ptr(true),
	}})
	if !resp.GetSuccess() || resp.GetType() != rpcpb.CriuReqType_DUMP || resp.GetDump() == nil {
		t.Fatalf("DUMP answered %v", resp)
	}
	if diff := cmp.Diff([]string{"pre-dump", "query-ext-files", "post-dump"}, rt.notified); diff != "" {
		t.Errorf("DUMP notifications (-want +got):\n%s", diff)
	}
	if st := rt.done(); st != 0 {
		t.Fatalf("swrk exited %d after DUMP", st)
	}
	p.Wait()
	for _, name := range []string{criurpc.ImageName, "dump.log", "stats-dump"} {
		if _, err := os.Stat(filepath.Join(images, name)); err != nil {
			t.Errorf("after DUMP: %v", err)
		}
	}

	// The runtime's own cgroup for the restored process, made by crsub.
	cgroup := fmt.Sprintf("/crsub-swrk-test-%d", os.Getpid())
	pw := openPipeWriter(t, out)
	rt = startSwrk(t, pw)
	pw.Close()
	resp = rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(imagesDir.Fd())), LogFile: ptr("restore.log"), LogLevel: ptr(int32(4)),
		NotifyScripts: ptr(true), RstSibling: ptr(true), Root: ptr("/"), EvasiveDevices: ptr(true),
		ShellJob: ptr(true), OrphanPtsMaster: ptr(true), ManageCgroupsMode: rpcpb.CriuCgMode_DEFAULT.Enum(),
		InheritFd: []*rpcpb.InheritFd{{Key: ptr(fmt.Sprintf("pipe:[%d]", pipeInode(t, out))), Fd: ptr(int32(4))}},
		CgRoot:    []*rpcpb.CgroupRoot{{Ctrl: ptr("pids"), Path: &cgroup}},
	}})
	if !resp.GetSuccess() || resp.GetRestore().GetPid() != int32(pid) {
		b, _ := os.ReadFile(filepath.Join(images, "restore.log"))
		t.Fatalf("RESTORE answered %v\n%s", resp, b)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); unix.Wait4(pid, nil, 0, nil); removeCgroup("pids", cgroup) })
	p = nil
	want := []string{"pre-restore", fmt.Sprintf("setup-namespaces:%d", pid), "post-setup-namespaces", fmt.Sprintf("post-restore:%d", pid), "pre-resume", "post-resume"}
	if diff := cmp.Diff(want, rt.notified); diff != "" {
		t.Errorf("RESTORE notifications (-want +got):\n%s", diff)
	}
	if st := rt.done(); st != 0 {
		t.Fatalf("swrk exited %d after RESTORE", st)
	}
	// rst_sibling: the runtime is the restored process's parent.
	if ppid := crtest.Status(pid, "PPid"); ppid != strconv.Itoa(os.Getpid()) {
		t.Errorf("restored process's parent is %s, want the runtime, %d", ppid, os.Getpid())
	}
	if cg := cgroupOf(t, pid, "pids"); cg != "" && cg != cgroup {
		t.Errorf("restored process is in pids cgroup %s, want %s", cg, cgroup)
	}
	restoredCounter(t, dir, pid, out)
	// And the runtime reaps it, as its parent.
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || !ws.Signaled() {
		t.Errorf("reaping the restored process: %v, status %#x", err, ws)
	}
}

// openPipeWriter opens the write end of the pipe r reads, as a runtime
// holds its container's stdout.
func openPipeWriter(t *testing.T, r *os.File) *os.File {
	t.Helper()
	w, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", r.Fd()), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// cgroupOf is process pid's cgroup in the v1 hierarchy of controller,
// "" if there is none.
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == controller {
			return parts[2]
		}
	}
	return ""
}

// removeCgroup removes cgroup path of the v1 hierarchy of controller where
// it is mounted.
func removeCgroup(controller, path string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) > 4 && len(g) > 2 && g[0] == "cgroup" && strings.Contains(","+g[2]+",", ","+controller+",") {
			os.Remove(filepath.Join(f[4], path))
		}
	}
}

// A runtime whose post-dump action fails gets the DUMP refused, and its
// process runs on untouched; a request crsub cannot honour is answered
// with a message naming it, and crsub exits non-zero.
func TestSwrkFailures(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p, _ := startCounter(t, dir)
	crtest.WaitBlocked(t, p.Pid)
	imagesDir, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer imagesDir.Close()
	opts := func() *rpcpb.CriuOpts {
		return &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(imagesDir.Fd())), Pid: ptr(int32(p.Pid)), NotifyScripts: ptr(true), LogFile: ptr("dump.log")}
	}

	rt := startSwrk(t)
	rt.fail = "post-dump"
	resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: opts()})
	if resp.GetSuccess() || !strings.Contains(resp.GetCrErrmsg(), "post-dump") {
		t.Errorf("DUMP with a failing post-dump answered %v", resp)
	}
	if st := rt.done(); st == 0 {
		t.Error("swrk exited 0 after a failed DUMP")
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "dump.log")); !strings.Contains(string(log), "Error (crsub): ") {
		t.Errorf("dump.log has no Error line for runc to quote:\n%s", log)
	}
	counting(t, dir)

	// A snapshot for the restore below.
	images, err := os.MkdirTemp(dir, "images")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := os.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	rt = startSwrk(t)
	if resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(snap.Fd())), Pid: ptr(int32(p.Pid)), LeaveRunning: ptr(true)}}); !resp.GetSuccess() {
		t.Fatalf("DUMP, left running, answered %v", resp)
	}
	rt.done()
	counting(t, dir)

	for _, tc := range []struct {
		name string
		req  *rpcpb.CriuReq
		raw  []byte
		want string
	}{
		{name: "lazy pages", req: &rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: func() *rpcpb.CriuOpts {
			o := opts()
			o.LazyPages = ptr(true)
			return o
		}()}, want: "lazy_pages: "},
		{name: "cpuinfo dump", req: &rpcpb.CriuReq{Type: rpcpb.CriuReqType_CPUINFO_DUMP.Enum(), Opts: opts()}, want: "CPUINFO_DUMP requests are not supported"},
		{name: "keep_open dump", req: &rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: opts(), KeepOpen: ptr(true)}, want: "keep_open: "},
		{name: "empty request", raw: []byte{0x08, 0x00}, want: "type: EMPTY requests are not supported"},
		{name: "unknown type", raw: []byte{0x08, 0x63}, want: "type: 99 requests are not supported"},
		{name: "malformed", raw: []byte{0x08}, want: "malformed request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := startSwrk(t)
			var resp *rpcpb.CriuResp
			if tc.raw != nil {
				if _, err := rt.conn.Write(tc.raw); err != nil {
					t.Fatal(err)
				}
				resp = rt.response()
			} else {
				resp = rt.call(tc.req)
			}
			if resp.GetSuccess() || !strings.Contains(resp.GetCrErrmsg(), tc.want) {
				t.Errorf("answered %v, want a failure saying %q", resp, tc.want)
			}
			if st := rt.done(); st == 0 {
				t.Error("swrk exited 0")
			}
			if crtest.Gone(p.Pid) {
				t.Fatal("the process is gone")
			}
		})
	}
	counting(t, dir)

	// Its image restored without the runtime's fd for its stdout pipe:
	// the answer says how to give it, and nothing is left behind.
	p.Kill()
	p.Wait()
	rt = startSwrk(t)
	resp = rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(snap.Fd()))}})
	if resp.GetSuccess() || resp.GetRestore().GetPid() != -1 || !strings.Contains(resp.GetCrErrmsg(), "fd 1 of pid "+strconv.Itoa(p.Pid)) || !strings.Contains(resp.GetCrErrmsg(), "inherit_fd") {
		t.Errorf("RESTORE without the stdout pipe answered %v", resp)
	}
	rt.done()
	if !crtest.Gone(p.Pid) {
		t.Errorf("a failed restore left pid %d: %s", p.Pid, crtest.Describe(p.Pid))
	}
}

// runc's pre-dump, then the dump against it in the same session, as
// CRIU serves them: the dump stores only what changed, and the restore
// takes the rest from the pre-dump, found relative to the images.
func TestSwrkPreDump(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	p, out := startCounter(t, dir)
	crtest.WaitBlocked(t, p.Pid)
	var pre, final *os.File
	for _, d := range []**os.File{&pre, &final} {
		path, err := os.MkdirTemp(dir, "images")
		if err != nil {
			t.Fatal(err)
		}
		if *d, err = os.Open(path); err != nil {
			t.Fatal(err)
		}
		defer (*d).Close()
	}
	rt := startSwrk(t)
	feat := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_FEATURE_CHECK.Enum(), KeepOpen: ptr(true), Features: &rpcpb.CriuFeatures{MemTrack: ptr(true)}})
	if !feat.GetFeatures().GetMemTrack() || feat.GetFeatures().GetLazyPages() {
		t.Errorf("FEATURE_CHECK answered %v", feat)
	}
	resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_PRE_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(pre.Fd())), Pid: ptr(int32(p.Pid)), TrackMem: ptr(true)}})
	if !resp.GetSuccess() || resp.GetType() != rpcpb.CriuReqType_PRE_DUMP {
		t.Fatalf("PRE_DUMP answered %v", resp)
	}
	counting(t, dir)
	resp = rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(final.Fd())), Pid: ptr(int32(p.Pid)), TrackMem: ptr(true),
		ParentImg: ptr("../" + filepath.Base(pre.Name()))}})
	if !resp.GetSuccess() {
		t.Fatalf("DUMP answered %v", resp)
	}
	if st := rt.done(); st != 0 {
		t.Fatalf("swrk exited %d", st)
	}
	p.Wait()
	size := func(d *os.File) int64 {
		st, err := os.Stat(filepath.Join(d.Name(), criurpc.ImageName))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	// The counter's 4 MiB did not change since the pre-dump.
	if size(final) >= size(pre)/2 {
		t.Errorf("the dump is %d bytes, the pre-dump %d: want only changed pages in the dump", size(final), size(pre))
	}

	w := openPipeWriter(t, out)
	rt = startSwrk(t, w)
	w.Close()
	resp = rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(final.Fd())),
		InheritFd:   []*rpcpb.InheritFd{{Key: ptr(fmt.Sprintf("pipe:[%d]", pipeInode(t, out))), Fd: ptr(int32(4))}}}})
	if !resp.GetSuccess() || resp.GetRestore().GetPid() != int32(p.Pid) {
		t.Fatalf("RESTORE answered %v", resp)
	}
	t.Cleanup(func() { unix.Kill(p.Pid, unix.SIGKILL) })
	rt.done()
	restoredCounter(t, dir, p.Pid, out)
}

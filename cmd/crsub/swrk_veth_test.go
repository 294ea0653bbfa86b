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
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/crtest"
)

// vethServer is a container wired to the host as LXD wires one: a network
// namespace of its own whose eth0 (MTU 1400, 10.73.0.2/24) is a veth with
// its peer, named by the argument, on the host. It answers every TCP
// connection to 10.73.0.2:7000 with "pong PID".
const vethServer = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char cmd[512];
	int host = open("/proc/self/ns/net", O_RDONLY), pid = getpid();
	if (argc < 2 || host < 0 || unshare(CLONE_NEWNET)) return 1;
	snprintf(cmd, sizeof(cmd), "ip link set lo up && ip link add eth0 mtu 1400 type veth peer name %s netns /proc/%d/fd/%d && "
	         "ip addr add 10.73.0.2/24 dev eth0 && ip link set eth0 up", argv[1], pid, host);
	if (system(cmd)) return 2;
	close(host);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7000) };
	inet_pton(AF_INET, "10.73.0.2", &a.sin_addr);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (void *)&a, sizeof(a)) || listen(l, 8)) return 3;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) continue;
		int n = snprintf(cmd, sizeof(cmd), "pong %d\n", getpid());
		write(c, cmd, n);
		close(c);
	}
}`

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// crsubLinks lists the host's links named as crsub names a pair's inner
// end until the engine takes it.
func crsubLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	var names []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "crsv") && strings.Contains(f[1], ".") {
			names = append(names, f[1])
		}
	}
	return names
}

// A restore asked for veth pairs (veths, as LXD sends them) makes each:
// the host end under the runtime's name (in the bridge named with it), the
// other the container's eth0 with its address, MTU and state, and the host
// reaches the container's server through it. A restore that fails, or is refused for a host name
// taken, leaves no link of its own.
func TestSwrkVeths(t *testing.T) {
	crtest.RequireRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	dir := t.TempDir()
	peer, out := fmt.Sprintf("crsvh%d", os.Getpid()%100000), fmt.Sprintf("crsvo%d", os.Getpid()%100000)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", peer).Run()
		exec.Command("ip", "link", "del", out).Run()
	})
	p := crtest.Start(t, dir, crtest.Build(t, vethServer), peer)
	pid := p.Pid
	crtest.WaitBlocked(t, pid)
	images, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer images.Close()
	rt := startSwrk(t)
	if resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(images.Fd())), Pid: ptr(int32(pid)), LogFile: ptr("dump.log"), LogLevel: ptr(int32(4)),
		Veths: []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr(out)}}}}); !resp.GetSuccess() {
		t.Fatalf("DUMP answered %v", resp)
	}
	rt.done()
	p.Wait()
	// The checkpointed namespace goes with its links a moment later.
	crtest.WaitFor(t, func() bool { return !linkExists(peer) }, "the original host end gone")

	restore := func(fail, ifOut string) *rpcpb.CriuResp {
		t.Helper()
		rt := startSwrk(t)
		rt.fail = fail
		resp := rt.call(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_RESTORE.Enum(), Opts: &rpcpb.CriuOpts{
			ImagesDirFd: ptr(int32(images.Fd())), LogFile: ptr("restore.log"), LogLevel: ptr(int32(4)), NotifyScripts: ptr(true),
			Veths: []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr(ifOut)}}}})
		rt.done()
		return resp
	}
	noneLeft := func(what string) {
		t.Helper()
		if !crtest.Gone(pid) {
			t.Errorf("%s: pid %d left: %s", what, pid, crtest.Describe(pid))
		}
		if linkExists(out) {
			t.Errorf("%s: host end %s left", what, out)
		}
		if l := crsubLinks(t); len(l) > 0 {
			t.Errorf("%s: inner ends left on the host: %v", what, l)
		}
	}

	// The runtime fails the restore once the link is in the container.
	if resp := restore("post-restore", out); resp.GetSuccess() || !strings.Contains(resp.GetCrErrmsg(), "post-restore") {
		t.Errorf("RESTORE failed by the runtime answered %v", resp)
	}
	noneLeft("a failed restore")

	// The host end's name is taken: refused, the link there left alone.
	if b, err := exec.Command("ip", "link", "add", out, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v: %s", out, err, b)
	}
	if resp := restore("", out); resp.GetSuccess() || !strings.Contains(resp.GetCrErrmsg(), "veths: ") || !strings.Contains(resp.GetCrErrmsg(), out) {
		t.Errorf("RESTORE with %s taken answered %v", out, resp)
	}
	if !linkExists(out) {
		t.Errorf("the host's own %s was removed", out)
	}
	exec.Command("ip", "link", "del", out).Run()
	noneLeft("a refused restore")

	// A bridge that does not exist: nothing made is left.
	if resp := restore("", out+"@crsvnone0"); resp.GetSuccess() || !strings.Contains(resp.GetCrErrmsg(), "crsvnone0") {
		t.Errorf("RESTORE into a missing bridge answered %v", resp)
	}
	noneLeft("a restore into a missing bridge")

	// The host end in a bridge the runtime made (OUT@BRIDGE, as LXC
	// sends it): crsub puts it there, up, as CRIU does.
	bridge := fmt.Sprintf("crsvb%d", os.Getpid()%100000)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	for _, args := range [][]string{{"link", "add", bridge, "type", "bridge"}, {"addr", "add", "10.73.0.1/24", "dev", bridge}, {"link", "set", bridge, "up"}} {
		if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	resp := restore("", out+"@"+bridge)
	if !resp.GetSuccess() || resp.GetRestore().GetPid() != int32(pid) {
		b, _ := os.ReadFile(filepath.Join(dir, "restore.log"))
		t.Fatalf("RESTORE answered %v\n%s", resp, b)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if linkExists(peer) {
		t.Errorf("the image's host end %s was made again", peer)
	}
	if l := crsubLinks(t); len(l) > 0 {
		t.Errorf("inner ends left on the host: %v", l)
	}
	if host, err := exec.Command("ip", "-o", "link", "show", "dev", out).CombinedOutput(); err != nil ||
		!strings.Contains(string(host), "master "+bridge) || !strings.Contains(string(host), ",UP") {
		t.Errorf("the host end is not up in %s: %v: %s", bridge, err, host)
	}
	inside, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(inside), "inet 10.73.0.2/24") {
		t.Errorf("the container's eth0: %v: %s", err, inside)
	}
	link, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-o", "link", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(link), "mtu 1400") || !strings.Contains(string(link), ",UP") || !strings.Contains(string(link), "link-netnsid") {
		t.Errorf("the container's eth0 is not a veth to the host, up, MTU 1400: %v: %s", err, link)
	}
	var line string
	crtest.WaitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", "10.73.0.2:7000", time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err == nil
	}, "the container's server reached through "+bridge)
	if want := fmt.Sprintf("pong %d\n", pid); line != want {
		t.Errorf("the container's server answered %q, want %q", line, want)
	}
}

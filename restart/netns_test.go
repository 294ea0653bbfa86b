package restart_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// netnsSubject makes a network namespace of its own: lo up, a veth pair
// inside with an address on each end, and, given a name, a veth eth0 whose
// peer of that name is on the host, addressed on both ends. It holds a TCP
// connection between two addresses of the namespace. On SIGUSR1 it reports
// whether lo is up and whether the connection still carries bytes both
// ways.
const netnsSubject = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "crtest.h"
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }
static int exchange(int a, int b, const char *msg) {
	char buf[16] = "";
	if (write(a, msg, strlen(msg)) != (ssize_t)strlen(msg)) return 0;
	if (read(b, buf, sizeof(buf) - 1) != (ssize_t)strlen(msg)) return 0;
	return !strcmp(buf, msg);
}
int main(int argc, char **argv) {
	char cmd[1024];
	int host = open("/proc/self/ns/net", O_RDONLY), pid = getpid();
	signal(SIGUSR1, on_usr1);
	if (host < 0 || unshare(CLONE_NEWNET)) return 1;
	if (system("ip link set lo up && ip link add in0 type veth peer name in1 && ip addr add 10.66.0.1/24 dev in0 && "
	           "ip addr add 10.66.0.2/24 dev in1 && ip link set in0 up && ip link set in1 up")) return 2;
	if (argc > 1) {
		snprintf(cmd, sizeof(cmd), "ip link add eth0 mtu 1400 type veth peer name %s netns /proc/%d/fd/%d && "
		         "ip addr add 10.67.0.2/24 dev eth0 && ip link set eth0 up && "
		         "nsenter --net=/proc/%d/fd/%d sh -c 'ip addr add 10.67.0.1/24 dev %s && ip link set %s up'",
		         argv[1], pid, host, pid, host, argv[1], argv[1]);
		if (system(cmd)) return 3;
	}
	close(host);
	struct sockaddr_in srv = { .sin_family = AF_INET, .sin_port = htons(5000) }, cli = srv;
	inet_pton(AF_INET, "10.66.0.1", &srv.sin_addr);
	inet_pton(AF_INET, "10.66.0.2", &cli.sin_addr);
	cli.sin_port = 0;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), a;
	if (bind(l, (void *)&srv, sizeof(srv)) || listen(l, 1) || bind(c, (void *)&cli, sizeof(cli)) ||
	    connect(c, (void *)&srv, sizeof(srv)) || (a = accept(l, NULL, NULL)) < 0) return 4;
	if (!exchange(c, a, "before")) return 5;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	crtest_await(&go, SIGUSR1);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	int up = ioctl(l, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
	int ok = exchange(c, a, "after1") && exchange(a, c, "after2");
	FILE *f = fopen("report", "w");
	fprintf(f, "lo=%s tcp=%s", up ? "up" : "down", ok ? "ok" : "broken");
	fclose(f);
	for (;;) pause();
}`

func requireIP(t *testing.T) {
	t.Helper()
	crtest.RequireRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// ipOut runs ip(8) and returns its output.
func ipOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostLinkExists says whether crsub's network namespace has the link.
func hostLinkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// netnsInode is the inode of process pid's network namespace.
func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A process in a network namespace of its own comes back in a new one
// holding what the old one held: lo up, the links and their addresses,
// and its TCP connection inside it carries bytes again.
func TestNetworkNamespace(t *testing.T) {
	requireIP(t)
	dir := t.TempDir()
	p := crtest.Start(t, dir, crtest.Build(t, netnsSubject))
	rp := checkpointAndRestart(t, p)
	if got := askReport(t, rp, dir, "report"); got != "lo=up tcp=ok" {
		t.Errorf("restored process: %q", got)
	}
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(rp.Pid), "-n", "ip", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter -t %d -n ip addr: %v: %s", rp.Pid, err, out)
	}
	addrs := string(out)
	for _, want := range []string{"in0    inet 10.66.0.1/24", "in1    inet 10.66.0.2/24", "lo    inet 127.0.0.1/8"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("the restored namespace's addresses lack %q:\n%s", want, addrs)
		}
	}
	if netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", rp.Pid)) == netnsInode(t, "/proc/self/ns/net") {
		t.Errorf("restored in crsub's network namespace")
	}
}

// Restart into what the caller gives: a network namespace made with
// ip netns add (empty: filled from the image), and a host link for the
// image's veth to the host.
func TestNetworkNamespaceSupplied(t *testing.T) {
	requireIP(t)
	dir := t.TempDir()
	peer := fmt.Sprintf("crsubh%d", os.Getpid()%100000)
	given, givenPeer := fmt.Sprintf("crsubg%d", os.Getpid()%100000), fmt.Sprintf("crsubp%d", os.Getpid()%100000)
	name := fmt.Sprintf("crsub-test-%d", os.Getpid())
	ipOut(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipOut(t, "link", "add", given, "type", "veth", "peer", "name", givenPeer)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", givenPeer).Run()
		exec.Command("ip", "link", "del", peer).Run()
	})

	p := crtest.Start(t, dir, crtest.Build(t, netnsSubject), peer)
	img := checkpointToMemory(t, p)
	opts := restart.DefaultOptions()
	opts.Namespaces = map[string]substitute.Namespace{"net": {Path: "/run/netns/" + name}}
	opts.Links = map[string]string{"eth0": given}
	rp, err := restart.Restart(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRestored(rp) })
	if got := askReport(t, rp, dir, "report"); got != "lo=up tcp=ok" {
		t.Errorf("restored process: %q", got)
	}
	if netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", rp.Pid)) != netnsInode(t, "/run/netns/"+name) {
		t.Errorf("the restored process is not in the namespace given")
	}
	addrs := ipOut(t, "-n", name, "-o", "addr", "show", "dev", "eth0")
	if !strings.Contains(addrs, "inet 10.67.0.2/24") {
		t.Errorf("eth0 (%s given) lacks its address:\n%s", given, addrs)
	}
	if link := ipOut(t, "-n", name, "-o", "link", "show", "dev", "eth0"); !strings.Contains(link, "mtu 1400") || !strings.Contains(link, ",UP") {
		t.Errorf("eth0 not as it was:\n%s", link)
	}
	if hostLinkExists(given) || hostLinkExists(peer) {
		t.Errorf("on the host: %s given still there: %v; the image's peer %s made again: %v", given, hostLinkExists(given), peer, hostLinkExists(peer))
	}
}

// Bad input fails naming it, before anything is left: no process, no
// link on the host; a restart that fails later gives a link back.
func TestNetworkNamespaceBadInput(t *testing.T) {
	requireIP(t)
	dir := t.TempDir()
	peer := fmt.Sprintf("crsubh%d", os.Getpid()%100000)
	given, givenPeer := fmt.Sprintf("crsubg%d", os.Getpid()%100000), fmt.Sprintf("crsubp%d", os.Getpid()%100000)
	ipOut(t, "link", "add", given, "type", "veth", "peer", "name", givenPeer)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", givenPeer).Run()
		exec.Command("ip", "link", "del", peer).Run()
	})
	p := crtest.Start(t, dir, crtest.Build(t, netnsSubject), peer)
	pid := p.Pid
	img := checkpointToMemory(t, p).Bytes()
	// The checkpointed namespace goes with its links a moment later.
	crtest.WaitFor(t, func() bool { return !hostLinkExists(peer) }, "the original peer gone")

	for _, tc := range []struct {
		name string
		opts func(*restart.Options)
		want string
	}{
		{"netns pointing at nothing", func(o *restart.Options) {
			o.Namespaces = map[string]substitute.Namespace{"net": {Path: "/run/netns/crsub-nonesuch"}}
		}, "/run/netns/crsub-nonesuch"},
		{"netns not a network namespace", func(o *restart.Options) {
			o.Namespaces = map[string]substitute.Namespace{"net": {Path: "/proc/self/ns/uts"}}
		}, "not a net one"},
		{"link that does not exist", func(o *restart.Options) { o.Links = map[string]string{"eth0": "crsub-nonesuch"} }, "no link crsub-nonesuch on the host"},
		{"link the image lacks", func(o *restart.Options) { o.Links = map[string]string{"eth7": given} }, "the image has no link eth7"},
		{"failure after the link was taken", func(o *restart.Options) {
			o.Links = map[string]string{"eth0": given}
			o.TasksCreated = func([]int) error { return errors.New("the launcher says no") }
		}, "the launcher says no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := restart.DefaultOptions()
			tc.opts(&opts)
			rp, err := restart.Restart(context.Background(), strings.NewReader(string(img)), opts)
			if err == nil {
				killRestored(rp)
				t.Fatalf("restart succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if syscall.Kill(pid, 0) == nil {
				t.Errorf("pid %d left running", pid)
			}
			// The namespace made goes a moment after its tasks.
			deadline := time.Now().Add(5 * time.Second)
			for hostLinkExists(peer) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if hostLinkExists(peer) {
				t.Errorf("the image's veth peer %s left on the host", peer)
			}
			if !hostLinkExists(given) {
				t.Errorf("link %s not given back to the host", given)
			}
		})
	}
}

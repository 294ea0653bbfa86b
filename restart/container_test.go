package restart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/internal/crtest"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

// containerSubject is a container made as `unshare --fork` makes one: the
// subject makes network, UTS, IPC and mount namespaces, a veth eth0 whose
// peer (named by its argument) is on the host, addressed on both ends, a
// root of its own (a bind mount of /, pivot_root'ed to), then a pid
// namespace whose init it forks; the init mounts proc there. Both sleep.
const containerSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char cmd[1024], root[4096], dev[4200], cwd[4096];
	int host = open("/proc/self/ns/net", O_RDONLY), pid = getpid(), sync[2];
	if (argc < 2 || host < 0 || !getcwd(cwd, sizeof(cwd))) return 1;
	if (unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNS)) return 2;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || sethostname("crsub-ctr", 9)) return 3;
	snprintf(cmd, sizeof(cmd), "ip link set lo up && ip link add eth0 type veth peer name %s netns /proc/%d/fd/%d && "
	         "ip addr add 10.216.0.2/30 dev eth0 && ip link set eth0 up && "
	         "nsenter --net=/proc/%d/fd/%d sh -c 'ip addr add 10.216.0.1/30 dev %s && ip link set %s up'",
	         argv[1], pid, host, pid, host, argv[1], argv[1]);
	if (system(cmd)) return 4;
	close(host);
	snprintf(root, sizeof(root), "%s/root", cwd);
	snprintf(dev, sizeof(dev), "%s/dev", root);
	if (mkdir(root, 0755) || mount("/", root, NULL, MS_BIND, NULL) || mount("/dev", dev, NULL, MS_BIND, NULL) ||
	    chdir(root) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir(cwd)) return 5;
	if (unshare(CLONE_NEWPID) || pipe(sync)) return 6;
	if (fork() == 0) {
		close(sync[0]);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) _exit(7);
		close(sync[1]);
		for (;;) pause();
	}
	close(sync[1]);
	char c;
	if (read(sync[0], &c, 1) != 0) return 8;
	close(sync[0]);
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}`

// hostView is what a failed restart must leave as it found: crsub's
// children, its fds on namespaces, its mounts, the host's links and the
// namespaces bound under /run/netns. Mounts are told apart by mount point
// and type: a mount left over the same would go unseen.
type hostView struct {
	Children, NamespaceFds, Mounts, Links, NetNS []string
}

// added is what after has that v has not: what other processes of the
// machine remove meanwhile is not the restart's to keep.
func (v hostView) added(after hostView) hostView {
	diff := func(was, now []string) []string {
		var out []string
		for _, x := range now {
			if !slices.Contains(was, x) {
				out = append(out, x)
			}
		}
		return out
	}
	return hostView{diff(v.Children, after.Children), diff(v.NamespaceFds, after.NamespaceFds), diff(v.Mounts, after.Mounts),
		diff(v.Links, after.Links), diff(v.NetNS, after.NetNS)}
}

func viewHost(t *testing.T) hostView {
	t.Helper()
	var v hostView
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			v.Children = append(v.Children, strings.TrimSuffix(strings.TrimPrefix(f, "/proc/"), "/stat"))
		}
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, f := range fds {
		if target, err := os.Readlink(f); err == nil && strings.Contains(target, ":[") && !strings.HasPrefix(target, "pipe:") &&
			!strings.HasPrefix(target, "socket:") && !strings.HasPrefix(target, "anon_inode:") {
			v.NamespaceFds = append(v.NamespaceFds, target)
		}
	}
	slices.Sort(v.NamespaceFds)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		f := strings.Fields(line)
		v.Mounts = append(v.Mounts, f[4]+" "+f[len(f)-3]) // mount point, file system type
	}
	slices.Sort(v.Mounts)
	for _, line := range strings.Split(strings.TrimSpace(ipOut(t, "-o", "link", "show")), "\n") {
		f := strings.Fields(line)
		v.Links = append(v.Links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
	}
	slices.Sort(v.Links)
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			v.NetNS = append(v.NetNS, e.Name())
		}
	}
	return v
}

// pidsCgroup is a cgroup of the v1 pids hierarchy, or skips the test
// without one.
func pidsCgroup(t *testing.T, name string) string {
	t.Helper()
	const hierarchy = "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(hierarchy, "cgroup.procs")); err != nil {
		t.Skip("no v1 pids hierarchy here")
	}
	cg := filepath.Join(hierarchy, name)
	t.Cleanup(func() { os.Remove(cg) })
	return cg
}

// A container restarted into a cgroup of the caller's (--cgroup-root
// pids:/PATH), missing: made, with the limit the image has, and the
// container's processes in it; a failed restart leaves none.
func TestContainerCgroupRoot(t *testing.T) {
	requireIP(t)
	dir := t.TempDir()
	tag := os.Getpid() % 100000
	src := pidsCgroup(t, fmt.Sprintf("crsub-src-%d", tag))
	dst := pidsCgroup(t, fmt.Sprintf("crsub-dst-%d", tag))
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "pids.max"), []byte("77"), 0); err != nil {
		t.Fatal(err)
	}
	peer := fmt.Sprintf("crsubc%d", tag)
	t.Cleanup(func() { exec.Command("ip", "link", "del", peer).Run() })
	// Moved in before it forks: its init is there too.
	bin := crtest.Build(t, containerSubject)
	p := startInCgroup(t, dir, bin, src, peer)
	img := checkpointToMemory(t, p).Bytes()
	crtest.WaitFor(t, func() bool { return os.Remove(src) == nil }, "the source cgroup removable")
	crtest.WaitFor(t, func() bool { return !hostLinkExists(peer) }, "the original peer gone")

	opts := restart.DefaultOptions()
	opts.CgroupRoots = map[string]string{"pids": "/" + filepath.Base(dst)}
	opts.TasksCreated = func([]int) error { return errors.New("the launcher says no") }
	before := viewHost(t)
	if _, err := restart.Restart(context.Background(), bytes.NewReader(img), opts); err == nil || !strings.Contains(err.Error(), "the launcher says no") {
		t.Fatalf("restart: %v, want the launcher's refusal", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Errorf("the failed restart left cgroup %s", dst)
	}
	crtest.WaitFor(t, func() bool { return !hostLinkExists(peer) }, "the peer made by the failed restart gone")
	if diff := cmp.Diff(hostView{}, before.added(viewHost(t))); diff != "" {
		t.Errorf("the failed restart left (-want +got):\n%s", diff)
	}

	opts.TasksCreated = nil
	rp, err := restart.Restart(context.Background(), bytes.NewReader(img), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRestored(rp) })
	if got, err := os.ReadFile(filepath.Join(dst, "pids.max")); err != nil || strings.TrimSpace(string(got)) != "77" {
		t.Errorf("%s/pids.max: %q, %v; want 77", dst, got, err)
	}
	for _, pid := range rp.Pids {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil || !strings.Contains(string(cg), ":pids:/"+filepath.Base(dst)+"\n") {
			t.Errorf("pid %d is not in %s: %s", pid, dst, cg)
		}
	}
}

// startInCgroup starts bin in cgroup cg (its cgroup.procs written by the
// child between fork and exec, through a shell) and waits until ready.
func startInCgroup(t *testing.T, dir, bin, cg string, args ...string) *os.Process {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "in-cgroup")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s/cgroup.procs && exec %s \"$@\"\n", cg, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return crtest.Start(t, dir, wrapper, args...)
}

// Bad input to a container's restart fails naming it, and leaves nothing
// the restart made: no process, namespace, mount, link or cgroup.
func TestContainerBadInput(t *testing.T) {
	requireIP(t)
	dir := t.TempDir()
	tag := os.Getpid() % 100000
	peer := fmt.Sprintf("crsubc%d", tag)
	given, givenPeer := fmt.Sprintf("crsubg%d", tag), fmt.Sprintf("crsubp%d", tag)
	cg := pidsCgroup(t, fmt.Sprintf("crsub-bad-%d", tag))
	ipOut(t, "link", "add", given, "type", "veth", "peer", "name", givenPeer)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", givenPeer).Run()
		exec.Command("ip", "link", "del", peer).Run()
	})
	p := crtest.Start(t, dir, crtest.Build(t, containerSubject), peer)
	// The tree's pids, which a restart gives its tasks again: a task
	// left behind would have one, wherever it was reparented to.
	pids := []int{p.Pid}
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid, p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(kids)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	img := checkpointToMemory(t, p).Bytes()
	crtest.WaitFor(t, func() bool { return !hostLinkExists(peer) }, "the original peer gone")
	emptyRoot, bareRoot := t.TempDir(), t.TempDir()
	for _, d := range []string{"dev", "proc"} {
		if err := os.Mkdir(filepath.Join(bareRoot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name string
		opts func(*restart.Options)
		want []string
	}{
		{"netns pointing at nothing", func(o *restart.Options) {
			o.Namespaces = map[string]substitute.Namespace{"net": {Path: "/run/netns/crsub-nonesuch"}}
		}, []string{"/run/netns/crsub-nonesuch"}},
		{"link whose host link does not exist", func(o *restart.Options) {
			o.Links = map[string]string{"eth0": "crsub-nonesuch"}
		}, []string{"--link eth0=crsub-nonesuch", "there is no link crsub-nonesuch on the host"}},
		{"root without the files the image maps", func(o *restart.Options) {
			o.Root = emptyRoot
		}, []string{"the root given (" + emptyRoot + ") lacks /dev (where the image mounts", "/proc (where the image mounts proc)"}},
		{"root with the mount points only", func(o *restart.Options) {
			o.Root = bareRoot
		}, []string{"in the root given, " + bareRoot, "mapped file /", "/subject: no such file or directory"}},
		{"refused once every task exists", func(o *restart.Options) {
			o.Links = map[string]string{"eth0": given}
			o.TasksCreated = func([]int) error { return errors.New("the launcher says no") }
		}, []string{"the launcher says no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := viewHost(t)
			opts := restart.DefaultOptions()
			opts.CgroupRoots = map[string]string{"pids": "/" + filepath.Base(cg)}
			tc.opts(&opts)
			rp, err := restart.Restart(context.Background(), bytes.NewReader(img), opts)
			if err == nil {
				killRestored(rp)
				t.Fatalf("restart succeeded")
			}
			t.Logf("error: %v", err)
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			// A namespace made goes a moment after its tasks, with its links.
			deadline := time.Now().Add(5 * time.Second)
			left := before.added(viewHost(t))
			for !cmp.Equal(hostView{}, left) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				left = before.added(viewHost(t))
			}
			if diff := cmp.Diff(hostView{}, left); diff != "" {
				t.Errorf("the failed restart left (-want +got):\n%s", diff)
			}
			if !hostLinkExists(given) {
				t.Errorf("link %s not given back to the host", given)
			}
			// Their killed tasks end as zombies of whoever they were
			// reparented to, which reaps them a moment later.
			for _, pid := range pids {
				for !crtest.Gone(pid) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if !crtest.Gone(pid) {
					t.Errorf("pid %d of the image left (parent %s): %s", pid, crtest.Status(pid, "PPid"), crtest.Describe(pid))
				}
			}
			if _, err := os.Stat(cg); err == nil {
				t.Errorf("the failed restart left cgroup %s", cg)
			}
		})
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/criurpc"
	"github.com/crsub/crsub/internal/crtest"
)

// asCriu in the environment makes the test binary run as crsub run
// through a link named criu.
const asCriu = "CRSUB_TEST_AS_CRIU"

func criu(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCriu+"=1")
	return cmd
}

func TestVerbosityArgs(t *testing.T) {
	got := verbosityArgs([]string{"-t", "5", "-v4", "-vvv", "-v", "--", "-v2"})
	want := []string{"-t", "5", "--verbosity=4", "--verbosity=5", "--verbosity=3", "--", "-v2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verbosityArgs (-want +got):\n%s", diff)
	}
}

// CRIU's command line, as users and scripts type it: the version, a check,
// a dump of a live counter and its restore, detached, with a pidfile and
// its stdout pipe inherited by CRIU's key; an option crsub does not know
// is refused by name.
func TestCriuCommandLine(t *testing.T) {
	crtest.RequireRoot(t)
	out, err := criu("--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "Version: "+strconv.Itoa(criurpc.InterfaceMajor)+"."+strconv.Itoa(criurpc.InterfaceMinor)+"\n") {
		t.Errorf("criu --version: %q, %v", out, err)
	}
	if out, err := criu("check").CombinedOutput(); err != nil || string(out) != "Looks good.\n" {
		t.Errorf("criu check: %q, %v", out, err)
	}
	if out, err := criu("check", "--feature", "lazy_pages").CombinedOutput(); err == nil || string(out) != "lazy_pages is not supported\n" {
		t.Errorf("criu check --feature lazy_pages: %q, %v", out, err)
	}

	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	p, pipe := startCounter(t, dir)
	crtest.WaitBlocked(t, p.Pid)
	cmd := criu("dump", "-t", strconv.Itoa(p.Pid), "-D", images, "--lazy-pages")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != exitFailure || !strings.Contains(string(out), "unknown flag: --lazy-pages") {
		t.Errorf("criu dump --lazy-pages: %q, %v", out, err)
	}
	if err := os.Mkdir(images, 0o700); err != nil {
		t.Fatal(err)
	}
	// Action scripts: one that fails at post-dump fails the dump and
	// leaves the tree running; one that notes each phase sees CRIU's.
	script := filepath.Join(dir, "action.sh")
	actions := filepath.Join(dir, "actions")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" = post-dump ] && [ -e "+dir+"/fail ] && exit 3\n"+
		"[ -d \"$CRTOOLS_IMAGE_DIR\" ] || exit 4\necho \"$CRTOOLS_SCRIPT_ACTION $CRTOOLS_INIT_PID\" >> "+actions+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := criu("dump", "-t", strconv.Itoa(p.Pid), "-D", images, "--action-script", script).CombinedOutput(); err == nil || !strings.Contains(string(out), "action script "+script+" for post-dump: exit status 3") {
		t.Fatalf("criu dump with a failing action script: %v: %s", err, out)
	}
	if err := unix.Kill(p.Pid, 0); err != nil {
		t.Fatalf("the tree is gone after a failed dump: %v", err)
	}
	os.Remove(filepath.Join(dir, "fail"))
	os.Remove(actions)
	if out, err := criu("dump", "-t", strconv.Itoa(p.Pid), "-D", images, "-o", "dump.log", "-v4", "--shell-job", "--tcp-established", "--file-locks", "--action-script", script).CombinedOutput(); err != nil {
		t.Fatalf("criu dump: %v: %s", err, out)
	}
	p.Wait()
	config := filepath.Join(dir, "criu.conf")
	if err := os.WriteFile(config, []byte("# as a CRIU configuration file says it\naction-script "+script+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	w := openPipeWriter(t, pipe)
	defer w.Close()
	key := "fd[3]:pipe:[" + strconv.FormatUint(pipeInode(t, pipe), 10) + "]"
	cmd = criu("restore", "-D", images, "-d", "--pidfile", "restored.pid", "-o", "restore.log", "--inherit-fd", key, "--config", config)
	cmd.ExtraFiles = []*os.File{w}
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(images, "restore.log"))
		t.Fatalf("criu restore: %v: %s\n%s", err, out, log)
	}
	b, err := os.ReadFile(filepath.Join(images, "restored.pid"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.Pid) {
		t.Fatalf("pidfile: %q, %v; want %d", b, err, p.Pid)
	}
	t.Cleanup(func() { unix.Kill(p.Pid, unix.SIGKILL) })
	pid := strconv.Itoa(p.Pid)
	want := "pre-dump " + pid + "\npost-dump " + pid + "\npre-restore \nsetup-namespaces " + pid + "\npost-setup-namespaces " + pid +
		"\npost-restore " + pid + "\npre-resume " + pid + "\npost-resume " + pid + "\n"
	if got, err := os.ReadFile(actions); err != nil || string(got) != want {
		t.Errorf("action scripts ran as\n%s(%v)\nwant\n%s", got, err, want)
	}
	restoredCounter(t, dir, p.Pid, pipe)
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/internal/crtest"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "criu" {
		// Run again as criu by crsub itself (a page server, a service
		// in the background), as main does.
		os.Exit(runCriu(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(asCrsub) != "" {
		// The test binary standing in for crsub, for tests that kill it.
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(asCriu) != "" {
		// And for crsub run as criu.
		os.Exit(runCriu(os.Args[1:], os.Stdout, os.Stderr))
	}
	crtest.CloseInherited()
	os.Exit(m.Run())
}

// messageSubject holds fd 5 on the file "data", fd 3 on an AF_XDP socket
// (a kind crsub does not support) with "xdp", and waits.
const messageSubject = `#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int fd = open("data", O_RDWR | O_CREAT, 0600);
	dup2(fd, 5);
	close(fd);
	if (argc > 1 && !strcmp(argv[1], "xdp") && socket(AF_XDP, SOCK_RAW, 0) != 3) return 1;
	close(open("ready", O_CREAT | O_WRONLY, 0600));
	for (;;) pause();
}
`

// normalize replaces what differs from run to run in a message: the test's
// directory, the subject's pid, record indexes, offsets and inodes.
func normalize(msg, dir string, pid int) string {
	msg = strings.ReplaceAll(msg, dir, "DIR")
	msg = regexp.MustCompile(`\b`+strconv.Itoa(pid)+`\b`).ReplaceAllString(msg, "PID")
	msg = regexp.MustCompile(`image record \d+`).ReplaceAllString(msg, "image record N")
	msg = regexp.MustCompile(`offset \d+`).ReplaceAllString(msg, "offset N")
	msg = regexp.MustCompile(`socket:\[\d+\]`).ReplaceAllString(msg, "socket:[INODE]")
	return msg
}

// TestMessages pins the whole text of the messages users see most, as the
// CLI prints them over the library's errors, so that no layer repeats what
// another says.
func TestMessages(t *testing.T) {
	crtest.RequireRoot(t)
	dir := t.TempDir()
	bin := crtest.Build(t, messageSubject)
	crsub := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return code, strings.TrimSpace(errOut.String())
	}
	checkpointed := func(t *testing.T) (string, int) {
		t.Helper()
		sub := t.TempDir()
		p := crtest.Start(t, sub, bin)
		crtest.WaitBlocked(t, p.Pid)
		img := filepath.Join(sub, "img")
		if code, msg := crsub("checkpoint", "--pid", strconv.Itoa(p.Pid), "-o", img); code != 0 {
			t.Fatalf("checkpoint: %s", msg)
		}
		p.Wait()
		return img, p.Pid
	}

	for _, tc := range []struct {
		name string
		// do runs crsub and returns its exit code, stderr, and what
		// normalize replaces.
		do   func(t *testing.T) (code int, msg, dir string, pid int)
		code int
		want string
	}{
		{"checkpoint: an fd of an unsupported kind", func(t *testing.T) (int, string, string, int) {
			sub := t.TempDir()
			p := crtest.Start(t, sub, bin, "xdp")
			crtest.WaitBlocked(t, p.Pid)
			code, msg := crsub("checkpoint", "--pid", strconv.Itoa(p.Pid), "-o", filepath.Join(sub, "img"))
			return code, msg, sub, p.Pid
		}, exitFailure, "crsub checkpoint: pid PID: fd 3: socket:[INODE], family 44, type 3: this kind of file is not supported yet"},
		{"checkpoint: no such process", func(t *testing.T) (int, string, string, int) {
			code, msg := crsub("checkpoint", "--pid", "4194304", "-o", filepath.Join(dir, "img"))
			return code, msg, dir, 0
		}, exitFailure, "crsub checkpoint: no process has pid 4194304"},
		{"restart: the pid in use", func(t *testing.T) (int, string, string, int) {
			sub := t.TempDir()
			p := crtest.Start(t, sub, bin)
			crtest.WaitBlocked(t, p.Pid)
			img := filepath.Join(sub, "img")
			if code, msg := crsub("checkpoint", "--pid", strconv.Itoa(p.Pid), "-o", img, "--leave-running"); code != 0 {
				t.Fatalf("checkpoint: %s", msg)
			}
			code, msg := crsub("restart", "-i", img, "--detach")
			return code, msg, sub, p.Pid
		}, exitFailure, `crsub restart: pid PID is in use by "COMM" (state S); it must be free to restore the checkpointed process`},
		{"restart: a file gone", func(t *testing.T) (int, string, string, int) {
			img, pid := checkpointed(t)
			sub := filepath.Dir(img)
			os.Remove(filepath.Join(sub, "data"))
			code, msg := crsub("restart", "-i", img, "--detach")
			return code, msg, sub, pid
		}, exitFailure, "crsub restart: image record N (fd 5 of pid PID): DIR/data: no such file or directory; give it a substitute with --fd 5=SPEC, e.g. --fd 5=null or --fd 5=file:PATH"},
		{"restart: a substitute that cannot open", func(t *testing.T) (int, string, string, int) {
			img, pid := checkpointed(t)
			sub := filepath.Dir(img)
			code, msg := crsub("restart", "-i", img, "--detach", "--fd", "5=file:"+sub+"/gone/log,append")
			return code, msg, sub, pid
		}, exitFailure, "crsub restart: image record N (fd 5 of pid PID): substitute file:DIR/gone/log,append: create DIR/gone/log: no such file or directory"},
		{"restart: a substitute for an fd the image lacks", func(t *testing.T) (int, string, string, int) {
			img, pid := checkpointed(t)
			code, msg := crsub("restart", "-i", img, "--detach", "--fd", "9=null")
			return code, msg, filepath.Dir(img), pid
		}, exitFailure, "crsub restart: substitute for fd 9 of pid PID: the image has no such fd"},
		{"restart: a bad spec", func(t *testing.T) (int, string, string, int) {
			code, msg := crsub("restart", "-i", "x", "--fd", "1=bogus:x")
			return code, msg, dir, 0
		}, exitUsage, `crsub restart: --fd 1: substitute "bogus:x": unknown kind "bogus" (want file:, null, tcp-listen:, tcp:, udp:, unix-listen:, unix:, fd: or exec:)`},
		{"restart: no image", func(t *testing.T) (int, string, string, int) {
			code, msg := crsub("restart", "-i", filepath.Join(dir, "none"))
			return code, msg, dir, 0
		}, exitFailure, "crsub restart: open DIR/none: no such file or directory"},
		{"restart: a cut image", func(t *testing.T) (int, string, string, int) {
			img, pid := checkpointed(t)
			b, _ := os.ReadFile(img)
			os.WriteFile(img, b[:len(b)/2], 0o600)
			code, msg := crsub("restart", "-i", img, "--detach")
			return code, normalizeCut(msg), filepath.Dir(img), pid
		}, exitFailure, "crsub restart: corrupt image: CUT"},
		{"filter: a rule that matches nothing", func(t *testing.T) (int, string, string, int) {
			img, pid := checkpointed(t)
			code, msg := crsub("filter", "-i", img, "-o", img+".out", "--drop", "9")
			return code, msg, filepath.Dir(img), pid
		}, exitFailure, "crsub filter: rule drop fd 9 of pid PID: the image has no such fd"},
		{"filter: a bad rule", func(t *testing.T) (int, string, string, int) {
			code, msg := crsub("filter", "-i", "x", "-o", "y", "--drop", "x:1")
			return code, msg, dir, 0
		}, exitUsage, `crsub filter: --drop x:1: "x" is not a pid (want FD or PID:FD)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg, d, pid := tc.do(t)
			if pid == 0 {
				pid = -1
			}
			msg = strings.ReplaceAll(msg, `"`+filepath.Base(bin)+`"`, `"COMM"`)
			if diff := cmp.Diff(tc.want, normalize(msg, d, pid)); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
		})
	}
}

// normalizeCut keeps what any cut of an image says: where it was cut
// differs with the image's size.
func normalizeCut(msg string) string {
	if i := strings.Index(msg, "corrupt image: "); i >= 0 {
		return msg[:i] + "corrupt image: CUT"
	}
	return msg
}

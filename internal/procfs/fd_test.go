package procfs

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseFdTarget(t *testing.T) {
	tests := []struct {
		in   string
		want FdLink
	}{
		{"/tmp/job/stdout", FdLink{Kind: FdFile, Path: "/tmp/job/stdout"}},
		{"/tmp/scratch/del me (x) (deleted)", FdLink{Kind: FdFile, Path: "/tmp/scratch/del me (x)", Deleted: true}},
		{"/memfd:my mem fd (deleted)", FdLink{Kind: FdMemfd, Path: "my mem fd", Deleted: true}},
		{"/memfd:not deleted", FdLink{Kind: FdFile, Path: "/memfd:not deleted"}},
		{"/memfd: (deleted)", FdLink{Kind: FdMemfd, Path: "", Deleted: true}}, // memfd_create("")
		{"pipe:[6221]", FdLink{Kind: FdPipe, Inode: 6221}},
		{"socket:[9062]", FdLink{Kind: FdSocket, Inode: 9062}},
		{"anon_inode:[eventpoll]", FdLink{Kind: FdEpoll}},
		{"anon_inode:[eventfd]", FdLink{Kind: FdEventfd}},
		{"anon_inode:[timerfd]", FdLink{Kind: FdTimerfd}},
		{"anon_inode:[signalfd]", FdLink{Kind: FdSignalfd}},
		{"anon_inode:inotify", FdLink{Kind: FdInotify}},
		{"anon_inode:[fanotify]", FdLink{Kind: FdFanotify}},
		{"anon_inode:[pidfd]", FdLink{Kind: FdPidfd}},
		{"pidfd:[1234]", FdLink{Kind: FdPidfd, Inode: 1234}},
		{"anon_inode:[userfaultfd]", FdLink{Kind: FdUserfaultfd}},
		{"anon_inode:[io_uring]", FdLink{Kind: FdAnonInode, Path: "[io_uring]"}},
		{"anon_inode:bpf-map", FdLink{Kind: FdAnonInode, Path: "bpf-map"}},
		{"net:[4026531840]", FdLink{Kind: FdNamespace, Path: "net", Inode: 4026531840}},
		{"pid_for_children:[4026531836]", FdLink{Kind: FdNamespace, Path: "pid_for_children", Inode: 4026531836}},
		{"pipe:[x]", FdLink{Kind: FdOther, Path: "pipe:[x]"}},
		{"pipe:[1", FdLink{Kind: FdOther, Path: "pipe:[1"}},
		{":[1]", FdLink{Kind: FdOther, Path: ":[1]"}},
		{"a b:[1]", FdLink{Kind: FdOther, Path: "a b:[1]"}},
		{"", FdLink{Kind: FdOther}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ParseFdTarget(tc.in)); diff != "" {
				t.Errorf("ParseFdTarget(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
	if got := FdUserfaultfd.String(); got != "userfaultfd" {
		t.Errorf("String = %q", got)
	}
}

func TestParseFdTargetTestdata(t *testing.T) {
	for _, line := range strings.Split(string(readTestdata(t, "fdtargets.txt")), "\n") {
		if line == "" {
			continue
		}
		if k := ParseFdTarget(line).Kind; k == FdOther || k == FdAnonInode {
			t.Errorf("%q: kind %v", line, k)
		}
	}
}

func TestFdsAndTargets(t *testing.T) {
	pid := os.Getpid()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	fds, err := Fds(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(fds) || !slices.Contains(fds, p[0]) || !slices.Contains(fds, p[1]) || !slices.Contains(fds, 0) {
		t.Errorf("Fds = %v, want sorted and containing 0, %d, %d", fds, p[0], p[1])
	}
	var st unix.Stat_t
	if err := unix.Fstat(p[0], &st); err != nil {
		t.Fatal(err)
	}
	target, err := FdTarget(pid, p[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(FdLink{Kind: FdPipe, Inode: st.Ino}, ParseFdTarget(target)); diff != "" {
		t.Errorf("pipe target %q (-want +got):\n%s", target, diff)
	}

	mfd, err := unix.MemfdCreate("crsub test (x)", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	target, err = FdTarget(pid, mfd)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(FdLink{Kind: FdMemfd, Path: "crsub test (x)", Deleted: true}, ParseFdTarget(target)); diff != "" {
		t.Errorf("memfd target %q (-want +got):\n%s", target, diff)
	}

	if _, err := FdTarget(pid, 1<<20); err == nil {
		t.Error("FdTarget of a closed fd succeeded")
	}
}

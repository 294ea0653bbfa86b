package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseChildren(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"", nil, ""},
		{"123 ", []int{123}, ""},
		{"123 456 ", []int{123, 456}, ""},
		{"1 x ", nil, "procfs: children: item 2: \"x\": invalid syntax"},
	}
	for _, tc := range tests {
		got, err := ParseChildren([]byte(tc.in))
		if !wantErrContaining(t, err, tc.wantErr) {
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseChildren(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParsePersonality(t *testing.T) {
	tests := []struct {
		in      string
		want    uint32
		wantErr string
	}{
		{"00000000\n", 0, ""},
		{"00400000\n", 0x0400000, ""}, // READ_IMPLIES_EXEC
		{"0040000g\n", 0, "procfs: personality: "},
		{"", 0, "invalid syntax"},
	}
	for _, tc := range tests {
		got, err := ParsePersonality([]byte(tc.in))
		if wantErrContaining(t, err, tc.wantErr) && got != tc.want {
			t.Errorf("ParsePersonality(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestTaskSelf(t *testing.T) {
	pid := os.Getpid()
	tids, err := Tids(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(tids) || !slices.Contains(tids, pid) || !slices.Contains(tids, unix.Gettid()) {
		t.Errorf("Tids = %v, want sorted and containing %d and %d", tids, pid, unix.Gettid())
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	// The fork may have happened on any thread, and only that thread's
	// children file lists the child.
	var kids []int
	for _, tid := range tids {
		k, err := Children(pid, tid)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k...)
	}
	if !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v lack %d", kids, cmd.Process.Pid)
	}

	pers, err := Personality(pid)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0) // query only
	if uint32(want) != pers {
		t.Errorf("Personality = %#x, want %#x", pers, want)
	}

	exe, err := Exe(pid)
	if err != nil {
		t.Fatal(err)
	}
	if self, _ := os.Executable(); exe != self {
		t.Errorf("Exe = %q, os.Executable = %q", exe, self)
	}
	cwd, err := Cwd(pid)
	if wd, _ := os.Getwd(); err != nil || cwd != wd {
		t.Errorf("Cwd = %q, %v; want %q", cwd, err, wd)
	}
	if root, err := Root(pid); err != nil || root != "/" {
		t.Errorf("Root = %q, %v", root, err)
	}
	comm, err := Comm(pid)
	if want := filepath.Base(exe); err != nil || comm != want[:min(len(want), 15)] {
		t.Errorf("Comm = %q, %v; want %q", comm, err, want)
	}

	for name, f := range map[string]func(int) (string, error){"Exe": Exe, "Cwd": Cwd, "Root": Root, "Comm": Comm} {
		if _, err := f(-1); err == nil {
			t.Errorf("%s(-1) succeeded", name)
		}
	}
	if _, err := Tids(-1); err == nil {
		t.Error("Tids(-1) succeeded")
	}
}

package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

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
		{"1 x ", nil, "children: item 2: \"x\": invalid syntax"},
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
		{"0040000g\n", 0, "personality: "},
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

func TestParseSyscall(t *testing.T) {
	tests := []struct {
		in      string
		want    Blocked
		ok      bool
		wantErr string
	}{
		{"running\n", Blocked{}, false, ""},
		{"-1 0x7ffd713081c8 0x7fa98bccd2ad\n", Blocked{}, false, ""},
		{"202 0x7f1 0x80 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7fa9\n", Blocked{Nr: 202, Args: [6]uint64{0x7f1, 0x80, 0, 0, 0, 0xffffffff}}, true, ""},
		{"34 0x0 0x0\n", Blocked{}, false, "3 fields"},
		{"x 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0", Blocked{}, false, "number"},
		{"7 0x0 12 0x0 0x0 0x0 0x0 0x0 0x0", Blocked{}, false, "argument 2: \"12\" is not hex"},
		{"7 0x0 0xg 0x0 0x0 0x0 0x0 0x0 0x0", Blocked{}, false, "argument 2"},
	}
	for _, tc := range tests {
		got, ok, err := ParseSyscall([]byte(tc.in))
		if !wantErrContaining(t, err, tc.wantErr) {
			continue
		}
		if ok != tc.ok {
			t.Errorf("ParseSyscall(%q): ok %v, want %v", tc.in, ok, tc.ok)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseSyscall(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// sleep(1), asleep in clock_nanosleep(2), shows in /proc/PID/syscall so.
func TestReadSyscall(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var b Blocked
	var ok bool
	for range 200 {
		var err error
		if b, ok, err = ReadSyscall(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if ok && b.Nr == unix.SYS_CLOCK_NANOSLEEP {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("sleep(1) never seen in clock_nanosleep: last %+v (in a call: %v)", b, ok)
}

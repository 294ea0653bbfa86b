package procfs

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		file    string // testdata file, or
		in      string // literal input
		want    Stat
		wantErr string
	}{{
		name: "weird comm with parentheses, spaces and a newline",
		file: "stat-weirdcomm.txt",
		want: Stat{Pid: 6993, Comm: "a) (b) \nc", State: 'R', PPid: 6963, Pgrp: 6960, Session: 1979, Tpgid: -1,
			Flags: 4194560, MinFlt: 230, Priority: 20, NumThreads: 5, StartTime: 280536, VSize: 1256697856, Rss: 568,
			RssLim: 18446744073709551615, StartCode: 4194304, EndCode: 4929489, StartStack: 140727035234064,
			SigCatch: 2143420159, ExitSignal: 17, StartData: 5894144, EndData: 5938080, StartBrk: 348340224,
			ArgStart: 140727035234896, ArgEnd: 140727035234937, EnvStart: 140727035234937, EnvEnd: 140727035236303},
	}, {
		name: "kernel thread",
		file: "stat-kthreadd.txt",
		want: Stat{Pid: 2, Comm: "kthreadd", State: 'S', Tpgid: -1, Flags: 2129984, Priority: 20, NumThreads: 1,
			StartTime: 13, RssLim: 18446744073709551615, SigIgnore: 2147483647, SigCatch: 0, WChan: 1, NSwap: 0,
			ExitSignal: 0, Processor: 1, Signal: 0, Blocked: 0, CNSwap: 0},
	}, {
		name: "negative nice, exit code",
		in:   "7 (x) Z 1 7 7 34816 -1 4194308 1 2 3 4 5 6 -7 -8 39 19 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 99 2 5 6 -9 0 0 0 0 0 0 0 256 extra 1 2",
		want: Stat{Pid: 7, Comm: "x", State: 'Z', PPid: 1, Pgrp: 7, Session: 7, TtyNr: 34816, Tpgid: -1, Flags: 4194308,
			MinFlt: 1, CMinFlt: 2, MajFlt: 3, CMajFlt: 4, UTime: 5, STime: 6, CUTime: -7, CSTime: -8, Priority: 39, Nice: 19,
			NumThreads: 1, StartTime: 100, RssLim: 18446744073709551615, ExitSignal: 17, Processor: 1, RTPriority: 99,
			Policy: 2, DelayAcctBlkioTicks: 5, GuestTime: 6, CGuestTime: -9, ExitCode: 256},
	},
		{name: "no comm", in: "1 x S 0", wantErr: "field 2 (comm)"},
		{name: "bad pid", in: "x (a) S 0", wantErr: "field 1 (pid)"},
		{name: "no state", in: "1 (a)", wantErr: "field 3 (state): missing"},
		{name: "long state", in: "1 (a) SS 0", wantErr: "field 3 (state): \"SS\" is not one character"},
		{name: "truncated", in: "1 (a) S 0 0 0 0 -1", wantErr: "field 9 (flags): missing"},
		{name: "bad start_data", in: "1 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 -4", wantErr: "field 45 (start_data): \"-4\": invalid syntax"},
		{name: "overflow", in: "1 (a) S 99999999999", wantErr: "field 4 (ppid): \"99999999999\": value out of range"},
		{name: "only start_data missing", in: "1 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0", wantErr: "field 45 (start_data): missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if tc.file != "" {
				in = readTestdata(t, tc.file)
			}
			got, err := ParseStat(in)
			if !wantErrContaining(t, err, tc.wantErr) {
				if !strings.HasPrefix(err.Error(), "stat: ") {
					t.Errorf("error %q lacks the stat: prefix", err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseStat mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != os.Getpid() || st.PPid != os.Getppid() || st.Pgrp != unix.Getpgrp() {
		t.Errorf("pid/ppid/pgrp = %d/%d/%d, want %d/%d/%d", st.Pid, st.PPid, st.Pgrp, os.Getpid(), os.Getppid(), unix.Getpgrp())
	}
	if st.NumThreads < 1 || st.StartCode == 0 || st.ArgStart >= st.ArgEnd || st.EnvStart > st.EnvEnd {
		t.Errorf("implausible stat: %+v", st)
	}

	// A thread's comm with every awkward character the kernel allows.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	old, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	name := []byte("x) (y) \\\nz\x00")
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	// comm writes keep a trailing newline as part of the name, so strip it.
	defer os.WriteFile("/proc/self/task/"+strconv.Itoa(tid)+"/comm", bytes.TrimSuffix(old, []byte("\n")), 0)
	ts, err := ReadTaskStat(os.Getpid(), tid)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Pid != tid || ts.Comm != "x) (y) \\\nz" {
		t.Errorf("task stat pid %d comm %q", ts.Pid, ts.Comm)
	}
	status, err := ReadTaskStatus(os.Getpid(), tid)
	if err != nil {
		t.Fatal(err)
	}
	if status.Name != ts.Comm {
		t.Errorf("status Name %q, stat comm %q", status.Name, ts.Comm)
	}
	comm, err := Comm(os.Getpid())
	if err != nil || comm == "" {
		t.Errorf("Comm = %q, %v", comm, err)
	}

	_, err = ReadStat(-1)
	if err == nil || !strings.Contains(err.Error(), "/proc/-1/stat") {
		t.Errorf("ReadStat(-1) = %v, want an error naming the file", err)
	}
}

func TestReadStatErrorNamesFile(t *testing.T) {
	path := t.TempDir() + "/stat"
	bad := "1 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 x 0 0 0 0 0 0 0\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readStat(path)
	want := path + ": field 45 (start_data): \"x\": invalid syntax"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

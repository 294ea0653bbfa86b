package procfs

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func TestParseStatus(t *testing.T) {
	ignoreFields := cmpopts.IgnoreFields(Status{}, "Fields")
	tests := []struct {
		name    string
		file    string
		in      string
		want    Status
		wantErr string
	}{{
		name: "cat",
		file: "status-cat.txt",
		want: Status{Name: "cat", Umask: 0o022, State: 'R', Tgid: 6918, Pid: 6918, PPid: 6908, FDSize: 256,
			NStgid: []int{6918}, NSpid: []int{6918}, NSpgid: []int{6908}, NSsid: []int{1979}, Threads: 1,
			SigQ: SigQ{1, 96364}, CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
			CpusAllowedList: "0-1", MemsAllowedList: "0"},
	}, {
		name: "escaped comm",
		file: "status-weirdcomm.txt",
		want: Status{Name: "a) (b) \nc", Umask: 0o022, State: 'R', Tgid: 6993, Pid: 6993, PPid: 6963, FDSize: 256,
			NStgid: []int{6993}, NSpid: []int{6993}, NSpgid: []int{6960}, NSsid: []int{1979}, Threads: 5,
			SigQ: SigQ{5, 96364}, SigCgt: 0xfffffffd7fc1feff, CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
			CpusAllowedList: "0-1", MemsAllowedList: "0"},
	}, {
		name: "ids, groups, nested namespaces and masks",
		in: "Name:\t\\\\x\\n \n" + "Umask:\t0777\nState:\tt (tracing stop)\nTgid:\t5\nNgid:\t0\nPid:\t6\nPPid:\t1\nTracerPid:\t9\n" +
			"Uid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nGroups:\t10 20 4294967295 \nNStgid:\t5\t1\nNSpid:\t6\t2\nNSpgid:\t5\t1\nNSsid:\t5\t1\n" +
			"Threads:\t2\nSigQ:\t3/100\nSigPnd:\t0000000000000100\nShdPnd:\t8000000000000000\nSigBlk:\t0000000000010000\n" +
			"SigIgn:\t0000000000001000\nSigCgt:\t0000000180000000\nCapInh:\t0000000000000001\nCapPrm:\t0000000000000002\n" +
			"CapEff:\t0000000000000003\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000004\nNoNewPrivs:\t1\nSeccomp:\t2\n" +
			"Seccomp_filters:\t3\nCpus_allowed_list:\t0,2-3\nFuture_field:\twhatever\n",
		want: Status{Name: "\\x\n ", Umask: 0o777, State: 't', Tgid: 5, Pid: 6, PPid: 1, TracerPid: 9,
			Uid: [4]uint32{1, 2, 3, 4}, Gid: [4]uint32{5, 6, 7, 8}, Groups: []uint32{10, 20, 4294967295},
			NStgid: []int{5, 1}, NSpid: []int{6, 2}, NSpgid: []int{5, 1}, NSsid: []int{5, 1}, Threads: 2,
			SigQ: SigQ{3, 100}, SigPnd: 0x100, ShdPnd: 1 << 63, SigBlk: 0x10000, SigIgn: 0x1000, SigCgt: 0x180000000,
			CapInh: 1, CapPrm: 2, CapEff: 3, CapBnd: 0x1ffffffffff, CapAmb: 4, NoNewPrivs: true, Seccomp: 2,
			SeccompFilters: 3, CpusAllowedList: "0,2-3"},
	},
		{name: "missing pid", in: "Name:\tx\nState:\tR\nTgid:\t1\n", wantErr: "field Pid: missing"},
		{name: "no colon", in: "Name x\n", wantErr: "line 1: \"Name x\" has no ':'"},
		{name: "bad uid count", in: "Uid:\t1\t2\n", wantErr: "line 1: field Uid: \"1\\t2\": want 4 ids"},
		{name: "bad umask", in: "Umask:\t0999\n", wantErr: "field Umask"},
		{name: "bad sigmask", in: "SigBlk:\tzz\n", wantErr: "field SigBlk"},
		{name: "bad sigq", in: "SigQ:\t3\n", wantErr: "want queued/limit"},
		{name: "bad escape", in: "Name:\ta\\t\n", wantErr: "unknown escape"},
		{name: "dangling escape", in: "Name:\ta\\\n", wantErr: "dangling backslash"},
		{name: "repeated", in: "Pid:\t1\nPid:\t2\n", wantErr: "line 2: field Pid repeated"},
		{name: "bad nspid", in: "NSpid:\t1\tx\n", wantErr: "field NSpid: item 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if tc.file != "" {
				in = readTestdata(t, tc.file)
			}
			got, err := ParseStatus(in)
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got, ignoreFields); diff != "" {
				t.Errorf("ParseStatus mismatch (-want +got):\n%s", diff)
			}
			if lines := strings.Count(strings.TrimSpace(string(in)), "\n") + 1; len(got.Fields) != lines {
				t.Errorf("Fields has %d keys for %d lines", len(got.Fields), lines)
			}
		})
	}
}

func TestParseStatusTestdata(t *testing.T) {
	for name, b := range testdataFiles(t, "status-") {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStatus(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReadStatusSelf(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var mask unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, nil, &mask); err != nil {
		t.Fatal(err)
	}
	want := struct {
		Pid, PPid, Uid, Gid int
		NSpid               []int
	}{os.Getpid(), os.Getppid(), os.Getuid(), os.Getgid(), []int{os.Getpid()}}
	got := struct {
		Pid, PPid, Uid, Gid int
		NSpid               []int
	}{st.Pid, st.PPid, int(st.Uid[0]), int(st.Gid[0]), st.NSpid}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status mismatch (-want +got):\n%s", diff)
	}
	// The Go runtime catches SIGURG for preemption.
	if st.SigCgt&(1<<(unix.SIGURG-1)) == 0 {
		t.Errorf("SigCgt %#x lacks SIGURG", st.SigCgt)
	}
	if st.Threads < 1 || st.CpusAllowedList == "" || st.Fields["VmRSS"] == "" {
		t.Errorf("implausible status: threads %d, cpus %q, VmRSS %q", st.Threads, st.CpusAllowedList, st.Fields["VmRSS"])
	}
}

package procfs

import (
	"os"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseTimers(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    []PosixTimer
		wantErr string
	}{{
		name: "four kinds",
		file: "timers.txt",
		want: []PosixTimer{
			{ID: 3, Signal: 14, SigevValue: 3, Notify: "signal", NotifyPID: 6993, ClockID: -6},
			{ID: 2, Notify: "none", NotifyPID: 6993, ClockID: 7},
			{ID: 1, Signal: 14, SigevValue: 7, Notify: "signal", NotifyTID: true, NotifyPID: 6993, ClockID: 0},
			{ID: 0, Signal: 10, SigevValue: 0xdeadbeef, Notify: "signal", NotifyPID: 6993, ClockID: 1},
		},
	},
		{name: "empty", in: ""},
		{name: "truncated", in: "ID: 1\nsignal: 14/0\n", wantErr: "timer 1: truncated, no notify line"},
		{name: "out of order", in: "ID: 1\nnotify: none/pid.1\n", wantErr: "line 2: \"notify: none/pid.1\": want signal:"},
		{name: "bad notify", in: "ID: 1\nsignal: 14/0\nnotify: none/pgid.1\nClockID: 0\n", wantErr: "want method/pid.N"},
		{name: "empty method", in: "ID:0\nsignal:0/0\nnotify:/pid.0\nClockID:0", wantErr: "want method/pid.N"},
		{name: "bad signal", in: "ID: 1\nsignal: 14\n", wantErr: "want signo/value"},
		{name: "bad value", in: "ID: 1\nsignal: 14/xyz\n", wantErr: "field signal"},
		{name: "bad id", in: "ID: one\n", wantErr: "line 1: field ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if tc.file != "" {
				in = readTestdata(t, tc.file)
			}
			got, err := ParseTimers(in)
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseTimers mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// sigevent is struct sigevent for x86_64; x/sys/unix does not define it.
type sigevent struct {
	value  uint64
	signo  int32
	notify int32
	tid    int32
	_      [44]byte
}

func TestReadTimersSelf(t *testing.T) {
	ev := sigevent{value: 0x1234, signo: int32(unix.SIGUSR2), notify: 0 /* SIGEV_SIGNAL */}
	var id int32
	if _, _, e := unix.Syscall(unix.SYS_TIMER_CREATE, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ev)), uintptr(unsafe.Pointer(&id))); e != 0 {
		t.Fatal(e)
	}
	defer unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0)
	ts, err := ReadTimers(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := PosixTimer{ID: int(id), Signal: int(unix.SIGUSR2), SigevValue: 0x1234, Notify: "signal", NotifyPID: os.Getpid(), ClockID: unix.CLOCK_MONOTONIC}
	for _, got := range ts {
		if got.ID == int(id) {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("timer mismatch (-want +got):\n%s", diff)
			}
			return
		}
	}
	t.Errorf("timer %d not in %+v", id, ts)
}

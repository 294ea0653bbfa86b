package files

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMQStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mqStatus
		err  bool
	}{
		{"QSIZE:12         NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n", mqStatus{}, false},
		{"QSIZE:0          NOTIFY:0     SIGNO:10    NOTIFY_PID:4242  \n", mqStatus{notify: 0, signo: 10, notifyPid: 4242}, false},
		{"QSIZE:0          NOTIFY:1     SIGNO:0     NOTIFY_PID:7     \n", mqStatus{notify: 1, notifyPid: 7}, false},
		{"QSIZE:0 NOTIFY:2 SIGNO:0", mqStatus{}, true},
		{"QSIZE:0 NOTIFY:x SIGNO:0 NOTIFY_PID:1", mqStatus{}, true},
		{"QSIZE NOTIFY:0 SIGNO:0 NOTIFY_PID:1", mqStatus{}, true},
		{"", mqStatus{}, true},
	} {
		got, err := parseMQStatus(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseMQStatus(%q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err {
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(mqStatus{})); diff != "" {
				t.Errorf("parseMQStatus(%q) (-want +got):\n%s", tc.in, diff)
			}
		}
	}
}

func FuzzParseMQStatus(f *testing.F) {
	f.Add("QSIZE:12         NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n")
	f.Add("QSIZE:0 NOTIFY:1 SIGNO:10 NOTIFY_PID:4242")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseMQStatus(s)
		if err != nil {
			return
		}
		// What parsed says itself again the same way.
		again, err := parseMQStatus(fmt.Sprintf("NOTIFY:%d SIGNO:%d NOTIFY_PID:%d", st.notify, st.signo, st.notifyPid))
		if err != nil || again != st {
			t.Errorf("%q parsed as %+v, which reads back as %+v (%v)", s, st, again, err)
		}
	})
}

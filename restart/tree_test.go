package restart

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

// Each group whose leader was gone at checkpoint gets one stand-in, in
// its members' session.
func TestGoneLeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		procs []ckpt.TreeProcess
		want  map[int]int
	}{
		{"none gone", []ckpt.TreeProcess{{Pid: 10, Pgid: 5, Sid: 3}, {Pid: 11, Pgid: 11, Sid: 3}}, map[int]int{}},
		{"one group, two members",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 10, Sid: 3}, {Pid: 12, Pgid: 11, Sid: 3, Zombie: true, PgidLeaderGone: true}, {Pid: 13, Pgid: 11, Sid: 3, PgidLeaderGone: true}},
			map[int]int{11: 3}},
		{"two groups in two sessions",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 10, Sid: 3}, {Pid: 12, Pgid: 20, Sid: 3, PgidLeaderGone: true}, {Pid: 13, Pgid: 13, Sid: 13}, {Pid: 14, Pgid: 21, Sid: 13, PgidLeaderGone: true}},
			map[int]int{20: 3, 21: 13}},
		{"never for a leader in the tree or a session's own group",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 10, Sid: 10}, {Pid: 11, Pgid: 10, Sid: 10, PgidLeaderGone: true}, {Pid: 12, Pgid: 7, Sid: 7, PgidLeaderGone: true}},
			map[int]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := goneLeaders(&ckpt.Tree{Processes: tc.procs})
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("gone leaders (-want +got):\n%s", d)
			}
		})
	}
}

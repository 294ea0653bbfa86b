package checkpoint

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

// A group's leader is gone when it is not in the tree and no process
// leads the group outside it; a session's own group never is.
func TestMarkGoneLeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		procs   []ckpt.TreeProcess
		leading map[int]bool // processes outside the tree leading their group
		want    []bool
	}{
		{"leaders in the tree",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 10, Sid: 10}, {Pid: 11, Pgid: 10, Sid: 10}, {Pid: 12, Pgid: 12, Sid: 10}, {Pid: 13, Pgid: 12, Sid: 10, Zombie: true}},
			nil, []bool{false, false, false, false}},
		{"the root in its shell's group, the shell alive",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 5, Sid: 3}, {Pid: 11, Pgid: 5, Sid: 3}},
			map[int]bool{5: true}, []bool{false, false}},
		{"a zombie and a live process in a group whose leader was reaped",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 10, Sid: 3}, {Pid: 12, Pgid: 11, Sid: 3, Zombie: true}, {Pid: 13, Pgid: 11, Sid: 3}},
			nil, []bool{false, true, true}},
		{"a session whose leader is gone keeps its own group unmarked",
			[]ckpt.TreeProcess{{Pid: 10, Pgid: 7, Sid: 7}, {Pid: 11, Pgid: 8, Sid: 7}},
			nil, []bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := ckpt.Tree{Processes: tc.procs}
			markGoneLeaders(&tree, func(pgid int) bool { return tc.leading[pgid] })
			var got []bool
			for _, tp := range tree.Processes {
				got = append(got, tp.PgidLeaderGone)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("pgid_leader_gone (-want +got):\n%s", d)
			}
		})
	}
}

package checkpoint

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

func TestSessionOrder(t *testing.T) {
	// Each row: pid, ppid, sid; the init of the pid namespace first.
	type row struct{ pid, ppid, sid int }
	tests := []struct {
		name    string
		procs   []row
		zombies []ckpt.TreeProcess
		want    []int
	}{{
		name:  "an orphan after its session's leader (child_subreaper_and_reparent)",
		procs: []row{{1, 0, 1}, {2, 1, 2}, {4, 1, 3}, {3, 2, 3}},
		want:  []int{1, 2, 3, 4},
	}, {
		name:    "an orphan after its zombie leader's parent (zombie_leader)",
		procs:   []row{{1, 0, 1}, {4, 1, 3}, {2, 1, 2}},
		zombies: []ckpt.TreeProcess{{Pid: 3, Ppid: 2, Sid: 3, Zombie: true}},
		want:    []int{1, 2, 4},
	}, {
		name:  "a leader's children born before its setsid first (session01)",
		procs: []row{{1, 0, 1}, {2, 1, 2}, {3, 2, 3}, {4, 3, 3}, {5, 3, 2}, {6, 4, 4}},
		want:  []int{1, 2, 3, 5, 4, 6},
	}, {
		name:  "a gone leader's orphan keeps its place",
		procs: []row{{1, 0, 1}, {2, 1, 9}, {3, 1, 3}},
		want:  []int{1, 2, 3},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var procs []*proc
			for _, r := range tt.procs {
				st := &processState{tree: ckpt.TreeProcess{Pid: r.pid, Sid: r.sid, NsPid: r.pid}}
				procs = append(procs, &proc{pid: r.pid, ppid: r.ppid, state: st})
			}
			var got []int
			for _, p := range sessionOrder(procs, tt.zombies) {
				got = append(got, p.pid)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

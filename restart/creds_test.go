package restart

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

func TestCredSteps(t *testing.T) {
	const full = 1<<41 - 1
	for _, tc := range []struct {
		name  string
		creds ckpt.Creds
		want  []string
	}{
		{"root with every capability: ids, then the sets as they are",
			ckpt.Creds{CapPrm: full, CapEff: full, CapBnd: full},
			[]string{"prctl(PR_SET_KEEPCAPS)", "setgroups", "setresgid", "setresuid", "capset", "capset", "capset", "prctl(PR_SET_KEEPCAPS)"}},
		{"a user with an ambient capability, a smaller bounding set and its own fs uid",
			ckpt.Creds{Uid: [4]uint32{1000, 1000, 1000, 7}, Gid: [4]uint32{100, 100, 100, 100}, Groups: []uint32{5}, CapInh: 1 << 5, CapPrm: 1 << 5, CapEff: 1 << 5, CapAmb: 1 << 5, CapBnd: full &^ (1 << 22) &^ (1 << 40)},
			[]string{"prctl(PR_SET_KEEPCAPS)", "setgroups", "setresgid", "setresuid", "setfsuid", "capset", "capset",
				"raising ambient capability 5", "dropping capability 22 from the bounding set", "dropping capability 40 from the bounding set",
				"capset", "prctl(PR_SET_KEEPCAPS)"}},
		{"ids of all kinds (zdtm pid00): the fs gid set while still root",
			ckpt.Creds{Uid: [4]uint32{1, 2, 3, 2}, Gid: [4]uint32{5, 6, 7, 8}, CapBnd: full},
			[]string{"prctl(PR_SET_KEEPCAPS)", "setgroups", "setresgid", "setfsgid", "setresuid", "capset", "capset", "capset", "prctl(PR_SET_KEEPCAPS)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			steps := credSteps(tc.creds, full, 0, full)
			for _, st := range steps {
				got = append(got, st.what)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("steps (-want +got):\n%s", d)
			}
			last := steps[len(steps)-2].capset
			if last == nil || *last != [3]uint64{tc.creds.CapEff, tc.creds.CapPrm, tc.creds.CapInh} {
				t.Errorf("the last capset is %v, want the image's sets", last)
			}
		})
	}
}

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

func TestCredsInside(t *testing.T) {
	ranged := &ckpt.UserNamespace{UidMap: []ckpt.IDMap{{Inside: 0, Outside: 100000, Count: 65536}}, GidMap: []ckpt.IDMap{{Inside: 0, Outside: 200000, Count: 10}, {Inside: 10, Outside: 300000, Count: 5}}, Setgroups: "allow"}
	denied := &ckpt.UserNamespace{UidMap: []ckpt.IDMap{{Inside: 0, Outside: 1000, Count: 1}}, GidMap: []ckpt.IDMap{{Inside: 0, Outside: 1000, Count: 1}}, Setgroups: "deny"}
	for _, tc := range []struct {
		name     string
		creds    ckpt.Creds
		cur      []uint32
		u        *ckpt.UserNamespace
		want     ckpt.Creds
		wantKeep bool
		wantErr  bool
	}{
		{"a range map: ids and groups as inside", ckpt.Creds{Uid: [4]uint32{101000, 101000, 100000, 101000}, Gid: [4]uint32{200001, 200001, 300002, 200001}, Groups: []uint32{300004}, CapPrm: 7},
			[]uint32{0}, ranged, ckpt.Creds{Uid: [4]uint32{1000, 1000, 0, 1000}, Gid: [4]uint32{1, 1, 12, 1}, Groups: []uint32{14}, CapPrm: 7}, false, false},
		{"setgroups denied, groups as they start: kept", ckpt.Creds{Uid: [4]uint32{1000, 1000, 1000, 1000}, Gid: [4]uint32{1000, 1000, 1000, 1000}, Groups: []uint32{0}},
			[]uint32{0}, denied, ckpt.Creds{Groups: []uint32{0}}, true, false},
		{"setgroups denied, other groups: refused", ckpt.Creds{Uid: [4]uint32{1000, 1000, 1000, 1000}, Gid: [4]uint32{1000, 1000, 1000, 1000}, Groups: []uint32{5}},
			[]uint32{0}, denied, ckpt.Creds{}, false, true},
		{"an id outside the map", ckpt.Creds{Uid: [4]uint32{99, 100000, 100000, 100000}}, nil, ranged, ckpt.Creds{}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, keep, err := credsInside(tc.creds, tc.cur, tc.u)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" || keep != tc.wantKeep {
				t.Errorf("creds (-want +got):\n%s; keep %v, want %v", d, keep, tc.wantKeep)
			}
		})
	}
}

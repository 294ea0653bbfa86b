package zdtm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// CRIU's cgroup options become crsub's; the others have no counterpart.
func TestCrsubOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		criu    []string
		restart bool
		want    []string
	}{
		{"dump", []string{"--manage-cgroups", "--cgroup-root", "name=zdtmtst:/prefix"}, false, []string{"--cgroup-root", "name=zdtmtst:/prefix"}},
		{"restore", []string{"--manage-cgroups", "--cgroup-root", "/newroot", "--cgroup-root=name=zdtmtst:/prefix"}, true,
			[]string{"--cgroups=create", "--cgroup-root", "/newroot", "--cgroup-root", "name=zdtmtst:/prefix"}},
		{"full", []string{"--manage-cgroups=full"}, true, []string{"--cgroups=full"}},
		{"ignore", []string{"--manage-cgroups=ignore"}, true, []string{"--cgroups=ignore"}},
		{"none", []string{"--manage-cgroups=none"}, true, []string{"--cgroups=join"}},
		{"others", []string{"--tcp-established", "--cgroup-yard", "../yard", "--file-locks"}, true, nil},
		{"join a netns", []string{"--join-ns", "net:/var/run/netns/x"}, true, []string{"--netns", "/var/run/netns/x"}},
		{"join others", []string{"--tcp-close", "--join-ns", "uts:/proc/1/ns/uts", "--join-ns", "net:pid:7"}, true, []string{"--tcp-close", "--netns", "pid:7"}},
		{"join on dump", []string{"--join-ns", "net:pid:7"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := crsubOptions(tc.criu, tc.restart)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if _, err := crsubOptions([]string{"--manage-cgroups=bogus"}, true); err == nil {
		t.Errorf("an unknown mode passed")
	}
}

package zdtm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJoinNamespaces(t *testing.T) {
	for _, tc := range []struct {
		ropts []string
		want  []string
	}{
		{nil, nil},
		{[]string{"--join-ns", "net:/var/run/netns/x"}, []string{"--netns", "/var/run/netns/x"}},
		{[]string{"--tcp-close", "--join-ns", "uts:/proc/1/ns/uts", "--join-ns", "net:pid:7"}, []string{"--netns", "pid:7"}},
		{[]string{"--join-ns"}, nil},
	} {
		if diff := cmp.Diff(tc.want, joinNamespaces(tc.ropts)); diff != "" {
			t.Errorf("joinNamespaces(%q) (-want +got):\n%s", tc.ropts, diff)
		}
	}
}

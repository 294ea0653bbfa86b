package ns

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInputChains(t *testing.T) {
	tests := []struct {
		name    string
		listing string
		want    [][]string
	}{
		{"iptables-nft filter", "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 8880 drop\n\t}\n\tchain OUTPUT {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n",
			[][]string{{"ip", "filter", "INPUT"}}},
		{"inet and ip6, a regular chain", "table inet fw {\n\tchain in {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n\tchain helper {\n\t\taccept\n\t}\n}\ntable ip6 t6 {\n\tchain i6 {\n\t\ttype filter hook input priority 10;\n\t}\n}\n",
			[][]string{{"inet", "fw", "in"}, {"ip6", "t6", "i6"}}},
		{"not an IP table", "table bridge b {\n\tchain in {\n\t\ttype filter hook input priority 0;\n\t}\n}\n", nil},
		{"quoted chain name", "table ip t {\n\tchain \"my\" {\n\t\ttype filter hook input priority 0;\n\t}\n}\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, inputChains(tc.listing)); diff != "" {
				t.Errorf("inputChains (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithPassRule(t *testing.T) {
	tests := []struct {
		name, saved, want string
	}{
		{"filter", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 8880 -j DROP\nCOMMIT\n",
			"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 8880 -j DROP\n-I INPUT -m mark --mark 0xc114 -j ACCEPT\nCOMMIT\n"},
		{"nat left alone", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
			"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-I INPUT -m mark --mark 0xc114 -j ACCEPT\nCOMMIT\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, withPassRule(tc.saved)); diff != "" {
				t.Errorf("withPassRule (-want +got):\n%s", diff)
			}
		})
	}
}

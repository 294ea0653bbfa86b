package zdtm

import (
	"os/exec"
	"strings"
)

// Some tests add firewall rules while they run (socket-tcp-syn-sent drops
// port 8880 until its SIGTERM check) and CRIU locks connections with
// rules that only its restore removes. A test killed half-way leaves
// them, and every later test on the port hangs in connect. The driver
// snapshots the filter table around such tests and deletes the rules that
// appeared.

// touchesNetfilter tells whether t may leave rules behind.
func touchesNetfilter(t *Test) bool {
	for _, d := range t.Desc.Deps {
		if strings.Contains(d, "iptables") || strings.Contains(d, "nft") {
			return true
		}
	}
	for _, o := range append(append(append([]string{}, t.Desc.Opts...), t.Desc.Dopts...), t.Desc.Ropts...) {
		if o == "--tcp-established" || o == "--network-lock" {
			return true
		}
	}
	return false
}

var netfilterTools = []string{"iptables", "ip6tables"}

// netfilterRules returns `iptables -S` of the filter table per tool.
func netfilterRules() map[string][]string {
	m := map[string][]string{}
	for _, tool := range netfilterTools {
		out, err := exec.Command(tool, "-w", "-t", "filter", "-S").Output()
		if err != nil {
			continue
		}
		m[tool] = strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	return m
}

// removeNewRules deletes the "-A" rules that are in now but not in before,
// and returns them.
func removeNewRules(before map[string][]string) []string {
	var removed []string
	for tool, rules := range netfilterRules() {
		old, ok := before[tool]
		if !ok {
			continue
		}
		had := map[string]int{}
		for _, r := range old {
			had[r]++
		}
		for _, r := range rules {
			if had[r] > 0 {
				had[r]--
				continue
			}
			if !strings.HasPrefix(r, "-A ") {
				continue
			}
			args := append([]string{"-w", "-t", "filter", "-D"}, strings.Fields(strings.TrimPrefix(r, "-A "))...)
			if exec.Command(tool, args...).Run() == nil {
				removed = append(removed, tool+" "+r)
			}
		}
	}
	return removed
}

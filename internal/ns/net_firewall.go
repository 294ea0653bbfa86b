package ns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/netlock"
	"github.com/crsub/crsub/internal/sys"
)

// A network namespace's firewall is its nftables tables and its legacy
// iptables tables, read and loaded by the nft(8) and iptables-legacy-save
// and -restore commands, run from a thread in the namespace (they are in
// it too). Without nft, nftables tables are neither read nor loaded.

// lockTable is crsub's own network lock (package netlock), which the
// record leaves out.
const lockTable = "inet crsub"

// legacyTables are the legacy interface's tools and the /proc file that
// lists a namespace's tables of each.
var legacyTables = [...]struct{ names, save, restore string }{
	{"ip_tables_names", "iptables-legacy-save", "iptables-legacy-restore"},
	{"ip6_tables_names", "ip6tables-legacy-save", "ip6tables-legacy-restore"},
}

// dumpFirewall reads the namespace's firewall into rec, on a thread in it.
func dumpFirewall(rec *ckpt.Network) error {
	if nft, err := exec.LookPath("nft"); err == nil {
		out, err := run(nft, "", "list", "tables")
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			table, ok := strings.CutPrefix(line, "table ")
			if !ok || table == lockTable {
				continue
			}
			t, err := run(nft, "", append([]string{"list", "table"}, strings.Fields(table)...)...)
			if err != nil {
				return err
			}
			b.WriteString(t)
		}
		rec.Nftables = b.String()
	}
	for i, l := range legacyTables {
		names, err := os.ReadFile("/proc/thread-self/net/" + l.names)
		if errors.Is(err, os.ErrNotExist) || len(strings.TrimSpace(string(names))) == 0 {
			continue
		}
		if err != nil {
			return err
		}
		tool, err := exec.LookPath(l.save)
		if err != nil {
			return fmt.Errorf("the namespace has legacy iptables tables (%s), and %s is not installed", strings.Fields(string(names)), l.save)
		}
		out, err := run(tool, "")
		if err != nil {
			return err
		}
		out = withoutComments(out) // the time it was saved
		if i == 0 {
			rec.IPTablesLegacy = out
		} else {
			rec.IP6TablesLegacy = out
		}
	}
	return nil
}

// loadFirewall loads rec's firewall into the namespace.
func (r *netRestore) loadFirewall(rec *ckpt.Network) error {
	if rec.Nftables != "" {
		nft, err := exec.LookPath("nft")
		if err != nil {
			return fmt.Errorf("the image has nftables tables, and nft (Debian package nftables) is not installed")
		}
		if _, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(nft, rec.Nftables, "-f", "-") }); err != nil {
			return fmt.Errorf("loading the nftables tables: %w", err)
		}
		var undo strings.Builder
		for _, line := range strings.Split(rec.Nftables, "\n") {
			if table, ok := strings.CutPrefix(line, "table "); ok {
				fmt.Fprintf(&undo, "delete table %s\n", strings.TrimSuffix(strings.TrimSpace(table), " {"))
			}
		}
		r.undo = append(r.undo, func() error {
			_, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(nft, undo.String(), "-f", "-") })
			return err
		})
		if r.beforeRun != nil {
			if err := r.passInput(nft, rec.Nftables); err != nil {
				return err
			}
		}
	}
	for i, saved := range []string{rec.IPTablesLegacy, rec.IP6TablesLegacy} {
		if saved == "" {
			continue
		}
		l := legacyTables[i]
		tool, err := exec.LookPath(l.restore)
		if err != nil {
			return fmt.Errorf("the image has legacy iptables tables, and %s is not installed", l.restore)
		}
		load := saved
		pass := r.beforeRun != nil && (strings.Contains(saved, "\n*filter\n") || strings.HasPrefix(saved, "*filter\n"))
		if pass {
			load = withPassRule(saved)
		}
		if _, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(tool, load) }); err != nil {
			return fmt.Errorf("loading the legacy iptables tables: %w", err)
		}
		if pass {
			r.beforeRun(func() error {
				_, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(tool, "*filter\n-D "+passRule+"\nCOMMIT\n", "--noflush") })
				if err != nil {
					return fmt.Errorf("removing the rule that let crsub's segments in: %w", err)
				}
				return nil
			})
		}
		// Undone by emptying the tables loaded.
		var empty strings.Builder
		for _, line := range strings.Split(saved, "\n") {
			if strings.HasPrefix(line, "*") {
				fmt.Fprintf(&empty, "%s\nCOMMIT\n", line)
			}
		}
		r.undo = append(r.undo, func() error {
			_, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(tool, empty.String()) })
			return err
		})
	}
	return nil
}

// passRule lets in what the restart sends into the namespace on a peer's
// behalf (a TCP FIN replayed, package files), as CRIU's lock chain does.
var passRule = fmt.Sprintf("INPUT -m mark --mark %#x -j ACCEPT", netlock.PassMark)

// passInput puts a rule accepting what is marked netlock.PassMark first in
// each input chain of the nftables tables loaded (nftables), removed before
// the tasks run: an accept ends only its own chain, so crsub's lock table
// cannot let those packets past a drop of the image's.
func (r *netRestore) passInput(nft, nftables string) error {
	for _, chain := range inputChains(nftables) {
		args := append(append([]string{"--echo", "--handle", "insert", "rule"}, chain...), "meta", "mark", fmt.Sprintf("%#x", netlock.PassMark), "accept")
		out, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(nft, "", args...) })
		if err != nil {
			return fmt.Errorf("letting crsub's segments in: %w", err)
		}
		_, handle, ok := strings.Cut(out, "# handle ")
		handle, _, _ = strings.Cut(handle, "\n")
		handle = strings.TrimSpace(handle)
		if !ok || handle == "" || strings.Trim(handle, "0123456789") != "" {
			return fmt.Errorf("letting crsub's segments in: nft printed no handle for the rule (%q)", out)
		}
		del := append(append([]string{"delete", "rule"}, chain...), "handle", handle)
		r.beforeRun(func() error {
			if _, err := sys.InNetNS(r.nsfd, func() (string, error) { return run(nft, "", del...) }); err != nil {
				return fmt.Errorf("removing the rule that let crsub's segments in: %w", err)
			}
			return nil
		})
	}
	return nil
}

// inputChains lists the base chains on the input hook of an nft listing's
// IP tables, each as its family, table and name.
func inputChains(listing string) [][]string {
	var out [][]string
	var table []string
	chain := ""
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "table" && f[3] == "{":
			table, chain = nil, ""
			if f[1] == "ip" || f[1] == "ip6" || f[1] == "inet" {
				table = f[1:3]
			}
		case len(f) == 3 && f[0] == "chain" && f[2] == "{" && !strings.ContainsAny(f[1], `"'`):
			chain = f[1]
		case table != nil && chain != "" && strings.Contains(line, " hook input "):
			out = append(out, []string{table[0], table[1], chain})
		}
	}
	return out
}

// withPassRule is an iptables-save output with passRule first in the
// filter table's INPUT chain.
func withPassRule(saved string) string {
	var b strings.Builder
	filter := false
	for _, line := range strings.SplitAfter(saved, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			filter = strings.TrimSpace(line) == "*filter"
		case filter && strings.TrimSpace(line) == "COMMIT":
			b.WriteString("-I " + passRule + "\n")
			filter = false
		}
		b.WriteString(line)
	}
	return b.String()
}

func withoutComments(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// run runs a command with stdin and returns its output.
func run(path, stdin string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

package zdtm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Test is one zdtm static test: NAME in the static directory, its .desc
// and the command line that starts it.
type Test struct {
	Name    string
	Dir     string // the static directory, absolute
	Desc    Desc
	DescErr error    // the .desc could not be read; the test is skipped
	Argv    []string // from `make -n NAME.pid`; ./NAME --pidfile=... --outfile=...
	// Ns is the ns flavour's root the test runs in; nil for the host
	// flavour.
	Ns *NsRoot
}

// RunDir is the directory the test starts in: the static directory, as
// the ns flavour's root shows it in that flavour (the test takes its
// working directory into its root).
func (t *Test) RunDir() string {
	if t.Ns == nil {
		return t.Dir
	}
	rel, err := filepath.Rel(t.Ns.TestDir, t.Dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return t.Dir
	}
	return filepath.Join(t.Ns.Root, rel)
}

// Path returns dir/NAME+suffix.
func (t *Test) Path(suffix string) string { return filepath.Join(t.Dir, t.Name+suffix) }

// ListTests returns the names of the tests in the static directory, as
// zdtm.py's all_tests finds them: executable regular files, without the
// .checkskip and .hook helpers and the ones zdtm.desc excludes.
func ListTests(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	excl := staticExcludes(dir)
	var names []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm()&0o100 == 0 {
			continue
		}
		n := e.Name()
		if strings.HasSuffix(n, ".checkskip") || strings.HasSuffix(n, ".hook") || excl[n] {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// staticExcludes reads the exclude list of test/zdtm.desc (two levels up
// from the static directory): route_rules and criu-rtc.so in v4.2.
func staticExcludes(dir string) map[string]bool {
	excl := map[string]bool{"route_rules": true, "criu-rtc.so": true}
	b, err := os.ReadFile(filepath.Join(dir, "..", "..", "zdtm.desc"))
	if err != nil {
		return excl
	}
	v, err := ParseLiteral(string(b))
	if err != nil {
		return excl
	}
	m, _ := v.(map[string]any)
	l, _ := m["exclude"].([]any)
	for _, e := range l {
		if s, ok := e.(string); ok && strings.HasPrefix(s, "static/") {
			excl[strings.TrimPrefix(s, "static/")] = true
		}
	}
	return excl
}

// LoadTest reads NAME's .desc. The command line is worked out later, by
// CommandLine, only for tests that are run.
func LoadTest(dir, name string) *Test {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	t := &Test{Name: name, Dir: abs}
	t.Desc, t.DescErr = ReadDesc(abs, name)
	return t
}

// CommandLine asks the static Makefile how it starts NAME (`make -n
// NAME.pid`, with the binary taken as built and NAME.pid as missing) and keeps the line that runs ./NAME. The rules have no
// quoting, so the line is split at blanks.
func CommandLine(ctx context.Context, dir, name string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "make", "-n", "--no-print-directory", "-o", name, "-W", name, name+".pid")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("make -n %s.pid: %v: %s", name, err, lastLine(errb.String()))
	}
	return pickCommand(out.String(), name)
}

func pickCommand(makeOut, name string) ([]string, error) {
	for _, line := range strings.Split(makeOut, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "./"+name || f[0] == name) {
			f[0] = "./" + name
			return f, nil
		}
	}
	return nil, fmt.Errorf("make -n %s.pid does not run ./%s", name, name)
}

// Machine answers what a flavour needs to know about this machine.
type Machine struct {
	Arch    string                 // zdtm.py's arch: x86_64 for amd64
	Feature func(name string) bool // criu check --feature NAME; nil: every feature present
	Flavor  string                 // the flavour tests run in: h (host, also when empty) or ns
	// Named says the tests were named one by one: noauto tests run then,
	// as with zdtm.py's -t.
	Named bool
}

// GoArchToZdtm maps GOARCH to the names .desc files use.
func GoArchToZdtm(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64le":
		return "ppc64"
	}
	return goarch
}

// HostArch is this machine's arch as .desc files name it.
func HostArch() string { return GoArchToZdtm(runtime.GOARCH) }

// SkipReason tells why the flavour of t does not run here, or "" if it
// does. It follows zdtm.py's run_tests for the flavour, and also skips
// crfail tests (CRIU is expected to refuse them), and noauto tests unless
// they were named.
func SkipReason(t *Test, m Machine) string {
	if t.DescErr != nil {
		return "unreadable .desc: " + t.DescErr.Error()
	}
	d := t.Desc
	if len(d.Arch) > 0 && !contains(d.Arch, m.Arch) {
		return "arch " + strings.Join(d.Arch, " ")
	}
	if d.HasFlag("noauto") && !m.Named {
		return "noauto: manual run only"
	}
	flavor := m.Flavor
	if flavor == "" {
		flavor = "h"
	}
	if !d.HasFlavor(flavor) {
		return "no " + flavorName(flavor) + " flavour (" + strings.Join(d.Flavors, " ") + " only)"
	}
	if d.HasFlag("crfail") {
		return "crfail: CRIU is expected to fail"
	}
	if m.Feature != nil {
		for _, f := range d.Features {
			if !m.Feature(f) {
				return "no " + f + " feature"
			}
		}
	}
	return ""
}

// CheckSkip runs NAME.checkskip if there is one: a non-zero exit skips the
// test, as in zdtm.py.
func CheckSkip(ctx context.Context, t *Test) string {
	p := t.Path(".checkskip")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o100 == 0 {
		return ""
	}
	cmd := exec.CommandContext(ctx, p)
	cmd.Dir = filepath.Join(t.Dir, "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		r := "checkskip failed"
		if l := lastLine(string(out)); l != "" {
			r += ": " + l
		}
		return r
	}
	return ""
}

// CriuFeatures returns a Machine.Feature that asks `criu check --feature`,
// once per feature.
func CriuFeatures(criu string) func(string) bool {
	cache := map[string]bool{}
	return func(f string) bool {
		if v, ok := cache[f]; ok {
			return v
		}
		cmd := exec.Command(criu, "check", "--no-default-config", "-v0", "--feature", f)
		v := cmd.Run() == nil
		cache[f] = v
		return v
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n\r\t "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// flavorName names a flavour in messages.
func flavorName(f string) string {
	if f == "h" {
		return "host"
	}
	return f
}

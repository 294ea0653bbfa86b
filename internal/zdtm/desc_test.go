package zdtm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDesc(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want Desc
	}{
		{"empty", "", DefaultDesc()},
		{"suid", "{'flags': 'suid'}", Desc{Flavors: []string{"h", "ns", "uns"}, Flags: []string{"suid"}, Timeout: 30}},
		{"tcp", "{'flavor': 'h', 'opts': '--tcp-established', 'flags': 'nouser samens', 'feature' : 'tcp_half_closed'}",
			Desc{Flavors: []string{"h"}, Flags: []string{"nouser", "samens"}, Opts: []string{"--tcp-established"},
				Features: []string{"tcp_half_closed"}, Timeout: 30}},
		{"dopts ropts", "{'dopts': '--tcp-established', 'ropts': '--tcp-close', 'flags': 'reqrst '}",
			Desc{Flavors: []string{"h", "ns", "uns"}, Flags: []string{"reqrst"}, Dopts: []string{"--tcp-established"},
				Ropts: []string{"--tcp-close"}, Timeout: 30}},
		{"timeout string", "{'timeout': '60'}", Desc{Flavors: []string{"h", "ns", "uns"}, Timeout: 60}},
		{"timeout int", "{'timeout': 90}", Desc{Flavors: []string{"h", "ns", "uns"}, Timeout: 90}},
		{"arch", "{'flavor': 'h', 'flags': 'suid crlib','arch': 'x86_64 aarch64 arm ppc64'}",
			Desc{Flavors: []string{"h"}, Flags: []string{"suid", "crlib"}, Arch: []string{"x86_64", "aarch64", "arm", "ppc64"}, Timeout: 30}},
		{"deps", "{   'deps': [   '/bin/sh',\n                '/usr/bin/sort'],\n    'flags': 'suid',\n    'flavor': 'ns uns'}",
			Desc{Flavors: []string{"ns", "uns"}, Flags: []string{"suid"}, Deps: []string{"/bin/sh", "/usr/bin/sort"}, Timeout: 30}},
		{"comment first", "# This test isn't executed in the host flavor\n{'flags': 'suid', 'flavor': 'ns uns'}",
			Desc{Flavors: []string{"ns", "uns"}, Flags: []string{"suid"}, Timeout: 30}},
		{"unknown key", "{'flags': 'suid', 'future': [1]}", Desc{Flavors: []string{"h", "ns", "uns"}, Flags: []string{"suid"}, Timeout: 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDesc(tc.src)
			if err != nil {
				t.Fatalf("ParseDesc(%q): %v", tc.src, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseDesc(%q) (-want +got):\n%s", tc.src, d)
			}
		})
	}
}

func TestParseDescErrors(t *testing.T) {
	for _, src := range []string{
		"['flags']",
		"{'flags': ['suid']}",
		"{'timeout': 'soon'}",
		"{'deps': '/bin/sh'}",
		"{'deps': [1]}",
		`os.getenv("ZDTM_MNT_EXT_DEV") and {'flavor': 'ns'} or {'flags': 'noauto'}`,
	} {
		if d, err := ParseDesc(src); err == nil {
			t.Errorf("ParseDesc(%q) = %+v, want an error", src, d)
		}
	}
}

func TestSkipReason(t *testing.T) {
	m := Machine{Arch: "x86_64", Feature: func(f string) bool { return f != "missing" }}
	for _, tc := range []struct {
		desc  string
		named bool
		want  string
	}{
		{"", false, ""},
		{"{'flavor': 'h'}", false, ""},
		{"{'flavor': 'ns uns'}", false, "no host flavour (ns uns only)"},
		{"{'flags': 'noauto'}", false, "noauto: manual run only"},
		{"{'flags': 'noauto'}", true, ""},
		{"{'flags': 'noauto', 'flavor': 'ns'}", true, "no host flavour (ns only)"},
		{"{'flags': 'suid crfail'}", false, "crfail: CRIU is expected to fail"},
		{"{'arch': 's390x'}", false, "arch s390x"},
		{"{'arch': 'x86_64 aarch64'}", false, ""},
		{"{'feature': 'present missing'}", false, "no missing feature"},
	} {
		d, err := ParseDesc(tc.desc)
		if err != nil {
			t.Fatal(err)
		}
		m.Named = tc.named
		if got := SkipReason(&Test{Name: "x", Desc: d}, m); got != tc.want {
			t.Errorf("SkipReason(%q, named %v) = %q, want %q", tc.desc, tc.named, got, tc.want)
		}
	}
}

func TestPickCommand(t *testing.T) {
	out := "cc -o env00 env00.o\n./env00 --pidfile=env00.pid --outfile=env00.out --envname=ENV_00_TEST\n"
	got, err := pickCommand(out, "env00")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"./env00", "--pidfile=env00.pid", "--outfile=env00.out", "--envname=ENV_00_TEST"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("pickCommand (-want +got):\n%s", d)
	}
	if _, err := pickCommand("make: Nothing to be done\n", "env00"); err == nil {
		t.Error("pickCommand without the command: no error")
	}
}

// The Makefile rules, as the static directory's Makefile writes them.
func TestCommandLineFromMakefile(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	mk := "TST_NOFILE = pipe00\nTST_FILE = write_read00\n\n" +
		"$(TST_NOFILE:%=%.pid):\t%.pid:\t%\n\t$(<D)/$(<F) --pidfile=$@ --outfile=$<.out\n" +
		"$(TST_FILE:%=%.pid):\t%.pid:\t%\n\t$(<D)/$(<F) --pidfile=$@ --outfile=$<.out --filename=$<.test\n" +
		"%: %.c\n\tcc -o $@ $<\n"
	for name, body := range map[string]string{"Makefile": mk, "pipe00": "", "write_read00": "", "pipe00.pid": "1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{
		"pipe00":       "./pipe00 --pidfile=pipe00.pid --outfile=pipe00.out",
		"write_read00": "./write_read00 --pidfile=write_read00.pid --outfile=write_read00.out --filename=write_read00.test",
	} {
		got, err := CommandLine(context.Background(), dir, name)
		if err != nil {
			t.Fatalf("CommandLine(%s): %v", name, err)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("CommandLine(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestOutFailure(t *testing.T) {
	dir := t.TempDir()
	tt := &Test{Name: "x", Dir: dir}
	out := "12:00:01.123:  4242: Test started\n12:00:02.000:  4242: FAIL: pipe00.c:80: data corrupted (errno = 11 (Resource temporarily unavailable))\n"
	if err := os.WriteFile(tt.Path(".out"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if outPassed(tt) {
		t.Error("outPassed of a FAIL")
	}
	want := "FAIL: pipe00.c:80: data corrupted (errno = 11 (Resource temporarily unavailable))"
	if got := outFailure(tt); got != want {
		t.Errorf("outFailure = %q, want %q", got, want)
	}
	if err := os.WriteFile(tt.Path(".out"), []byte("12:00:01.123:  4242: PASS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !outPassed(tt) {
		t.Error("outPassed of a PASS: false")
	}
}

func TestTable(t *testing.T) {
	res := []Result{
		{Test: "a", Engine: "criu", Mode: "plain", Status: Pass, Seconds: 1},
		{Test: "a", Engine: "crsub", Mode: "plain", Status: Fail, Step: "checkpoint", Reason: "x | y", Seconds: 2},
		{Test: "b", Engine: "criu", Mode: "plain", Status: Skip, Reason: "noauto"},
		{Test: "b", Engine: "crsub", Mode: "plain", Status: Skip, Reason: "noauto"},
		{Test: "c", Engine: "crsub", Mode: "iters=2", Status: Pass},
		{Test: "a", Engine: "crsub", Mode: "iters=2", Status: Fail, Step: "restart", Reason: "z"},
		{Test: "a", Engine: "criu", Mode: "ns", Status: Fail, Step: "dump", Reason: "w"},
		{Test: "a", Engine: "crsub", Mode: "ns", Status: Fail, Step: "restart", Reason: "v"},
		{Test: "b", Engine: "criu", Mode: "ns", Status: Pass},
		{Test: "b", Engine: "crsub", Mode: "ns", Status: Pass},
	}
	var b strings.Builder
	if err := WriteTable(&b, res, "plain", "static", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| a | PASS 1.0s | FAIL 2.0s | crsub checkpoint: x \\| y | iters=2: restart: z; ns (CRIU FAIL too): restart: v |\n",
		"- crsub, mode ns: 1 passed, 1 failed, 0 skipped; CRIU, mode ns: 1 passed, 1 failed, 0 skipped; of the 1 CRIU passes (ns), 1\n",
		"| b | SKIP | SKIP | noauto |  |\n",
		"- crsub, mode iters=2: 1 passed, 1 failed, 0 skipped; of the 1 CRIU passes (plain), 0\n",
		"- CRIU: 1 passed, 0 failed, 1 skipped\n",
		"CRIU passes and crsub fails: 1;",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "| c |") {
		t.Errorf("table shows another mode's test:\n%s", b.String())
	}
}

func TestResultsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.jsonl")
	for _, r := range []Result{
		{Test: "a", Engine: "crsub", Mode: "plain", Status: Fail},
		{Test: "b", Engine: "crsub", Mode: "plain", Status: Pass},
		{Test: "a", Engine: "crsub", Mode: "plain", Status: Pass},
	} {
		if err := AppendResult(p, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Test: "a", Engine: "crsub", Mode: "plain", Status: Pass},
		{Test: "b", Engine: "crsub", Mode: "plain", Status: Pass},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ReadResults (-want +got):\n%s", d)
	}
}

// A restore's --tcp-close, in opts or ropts, is crsub restart's.
func TestRestartTCPClose(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"{'opts': '--tcp-established'}", nil},
		{"{'dopts': '--tcp-established', 'ropts': '--tcp-close'}", []string{"--tcp-close"}},
		{"{'opts': '--tcp-close'}", []string{"--tcp-close"}},
		{"{'dopts': '--tcp-close'}", nil},
	} {
		d, err := ParseDesc(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := crsubOptions(append(slices.Clone(d.Opts), d.Ropts...), true)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.src, diff)
		}
	}
}

// A crsub mode is counted against CRIU's results in the same mode, else in
// its flavour, else against CRIU's plain results.
func TestCriuBaseline(t *testing.T) {
	criuOther := map[string]bool{"ns": true, "uns": true}
	for _, tt := range []struct{ mode, want string }{
		{"ns", "ns"},
		{"ns+snapshot+pre-copy", "ns"},
		{"uns+iters=3", "uns"},
		{"snapshot", ""},
		{"pre-copy+ns", ""},
	} {
		if got := criuBaseline(criuOther, tt.mode); got != tt.want {
			t.Errorf("criuBaseline(%q) = %q, want %q", tt.mode, got, tt.want)
		}
	}
}

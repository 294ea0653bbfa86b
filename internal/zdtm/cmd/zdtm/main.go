// Command zdtm runs CRIU's zdtm static tests (the host flavour) through
// crsub or CRIU, one at a time, and prints one line per test and a
// summary:
//
//	zdtm --static DIR [--engine crsub|criu] [--iters N] [--snapshot] [--pre-copy] [--filter]
//	     [--results FILE] [TEST...]
//	zdtm --table docs/zdtm.md --from crsub.jsonl --from criu.jsonl
//
// Each test is started from the static directory as its Makefile starts
// it, checkpointed, killed, restarted detached, sent SIGTERM, and passes
// if NAME.out says PASS. `make zdtm ZDTM_STATIC=DIR` runs it with crsub.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/zdtm"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		static    = pflag.String("static", os.Getenv("ZDTM_STATIC"), "CRIU's test/zdtm/static directory, built (default $ZDTM_STATIC)")
		engine    = pflag.String("engine", "crsub", "checkpoint/restart engine: crsub or criu")
		crsubBin  = pflag.String("crsub", "bin/crsub", "crsub binary")
		criuBin   = pflag.String("criu", "", "criu binary (default: criu/criu of the tree the static directory is in); also answers the .desc features")
		iters     = pflag.Int("iters", 1, "checkpoint/restart cycles in a row")
		snapshot  = pflag.Bool("snapshot", false, "take a --leave-running checkpoint before each real one")
		leaveRun  = pflag.Bool("leave-running", false, "same as --snapshot")
		preCopy   = pflag.Bool("pre-copy", false, "checkpoint with --pre-copy (CRIU: a pre-dump first)")
		filter    = pflag.Bool("filter", false, "restart through `crsub filter` with no rules (crsub only)")
		flavor    = pflag.String("flavor", "h", "how tests are started: h (on the host), ns (in namespaces of their own with a root of their own, as zdtm.py's ns flavour) or uns (ns and a user namespace, as zdtm.py's uns flavour)")
		results   = pflag.String("results", "", "append each result to FILE as a JSON line")
		table     = pflag.String("table", "", "write the CRIU/crsub table (docs/zdtm.md) to FILE from the --from results files and this run's")
		from      = pflag.StringArray("from", nil, "a results file for --table (repeatable)")
		tableMode = pflag.String("table-mode", "plain", "the mode whose results --table shows")
		suite     = pflag.String("suite", "static", "the zdtm directory the results of --table are from: static or transition")
		timeout   = pflag.Duration("timeout", 30*time.Second, "timeout of each step (a .desc timeout above it wins)")
		work      = pflag.String("work", "", "directory for images and logs (default: a new one under $TMPDIR)")
		keep      = pflag.Bool("keep", false, "keep the images and logs of passing tests too")
		verbose   = pflag.BoolP("verbose", "v", false, "log each step")
		uidSwitch = pflag.Bool("switch-uid", false, "run tests without the suid flag as uid 18943, as zdtm.py does (CRIU then needs CAP_SYS_RESOURCE)")
		list      = pflag.Bool("list", false, "print the tests that would run and why the others are skipped, and run nothing")
		isolate   = pflag.Bool("isolate", false, "run in network, pid and mount namespaces of its own (loopback up, /proc of the new pid namespace), so that the tests' ports and pids meet no other run's; crsub and the tests are both inside, so this is still the host flavour")
	)
	pflag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: zdtm --static DIR [--engine crsub|criu] [mode flags] [TEST...]\n       zdtm --table FILE --from RESULTS...\n\n")
		pflag.PrintDefaults()
	}
	pflag.Parse()

	// Nothing of what started the driver is passed on: a shell here leaks a
	// pipe (fd 251), and a test that inherits it has an external pipe.
	// (Runner.Run does it too, for the package's own test.)
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(os.Stderr, "zdtm: close_range: %v\n", err)
		return 2
	}

	if *static == "" && *table == "" {
		pflag.Usage()
		return 2
	}
	if *isolate {
		return reexecIsolated()
	}
	code := 0
	if *static != "" {
		code = runTests(runConfig{
			static: *static, engine: *engine, crsub: *crsubBin, criu: *criuBin,
			mode:    zdtm.Mode{Iters: *iters, Snapshot: *snapshot || *leaveRun, PreCopy: *preCopy, Filter: *filter, NS: *flavor == "ns" || *flavor == "uns", UserNS: *flavor == "uns"},
			flavor:  *flavor,
			results: *results, timeout: *timeout, work: *work, keep: *keep, switchUID: *uidSwitch, verbose: *verbose, list: *list,
			tests: pflag.Args(),
		})
		if code == 2 {
			return code
		}
	}
	if *table != "" {
		srcs := append([]string{}, *from...)
		if *results != "" && !contains(srcs, *results) {
			srcs = append(srcs, *results)
		}
		if err := writeTable(*table, *tableMode, *suite, srcs); err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
			return 2
		}
	}
	return code
}

// reexecIsolated runs the driver again, without --isolate, in namespaces
// of its own: unshare(1) makes them, and a shell stays their pid 1, to
// reap the tests that a checkpoint killed and crsub orphaned.
func reexecIsolated() int {
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--isolate" && a != "--isolate=true" {
			args = append(args, a)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
		return 2
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
		"sh", "-c", `ip link set lo up && "$@"; exit $?`, "zdtm", self}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "zdtm: isolating: %v\n", err)
		return 2
	}
	return 0
}

type runConfig struct {
	static, engine, crsub, criu string
	mode                        zdtm.Mode
	flavor                      string
	results                     string
	timeout                     time.Duration
	work                        string
	keep, switchUID, verbose    bool
	list                        bool
	tests                       []string
}

func runTests(c runConfig) int {
	static, err := filepath.Abs(c.static)
	if err != nil {
		fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
		return 2
	}
	if c.criu == "" {
		c.criu = filepath.Join(static, "..", "..", "..", "criu", "criu")
	}
	var eng zdtm.Engine
	switch c.engine {
	case "crsub":
		bin, err := filepath.Abs(c.crsub)
		if err == nil {
			_, err = os.Stat(bin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: crsub binary: %v (make build)\n", err)
			return 2
		}
		eng = &zdtm.Crsub{Bin: bin}
	case "criu":
		bin, err := filepath.Abs(c.criu)
		if err == nil {
			_, err = os.Stat(bin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: criu binary: %v (--criu PATH)\n", err)
			return 2
		}
		eng = &zdtm.Criu{Bin: bin}
	default:
		fmt.Fprintf(os.Stderr, "zdtm: --engine %q: crsub or criu\n", c.engine)
		return 2
	}
	if c.mode.Iters < 1 {
		fmt.Fprintf(os.Stderr, "zdtm: --iters %d: at least 1\n", c.mode.Iters)
		return 2
	}
	if c.flavor != "h" && c.flavor != "ns" && c.flavor != "uns" {
		fmt.Fprintf(os.Stderr, "zdtm: --flavor %q: h, ns or uns\n", c.flavor)
		return 2
	}
	machine := zdtm.Machine{Arch: zdtm.HostArch(), Flavor: c.flavor, Named: len(c.tests) > 0}
	if _, err := os.Stat(c.criu); err == nil {
		machine.Feature = zdtm.CriuFeatures(c.criu)
	} else {
		fmt.Fprintf(os.Stderr, "zdtm: no criu at %s: .desc features are not checked\n", c.criu)
	}

	tests := c.tests
	if len(tests) == 0 {
		if tests, err = zdtm.ListTests(static); err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
			return 2
		}
	}
	if c.list {
		for _, n := range tests {
			t := zdtm.LoadTest(static, n)
			if s := zdtm.SkipReason(t, machine); s != "" {
				fmt.Printf("SKIP %s  %s\n", n, s)
			} else {
				fmt.Printf("RUN  %s  %s\n", n, strings.Join(t.Desc.Opts, " "))
			}
		}
		return 0
	}

	// With --switch-uid tests run as uid 18943 unless suid: they write
	// their pid and out files in the static directory, so zdtm.py opens it
	// to everyone.
	if c.switchUID && os.Getuid() == 0 {
		if fi, err := os.Stat(static); err == nil {
			_ = os.Chmod(static, fi.Mode().Perm()|0o222)
		}
	}
	if c.work == "" {
		if c.work, err = os.MkdirTemp("", "zdtm-"+c.engine+"-"); err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
			return 2
		}
	}
	r := &zdtm.Runner{Engine: eng, Mode: c.mode, Machine: machine, Work: c.work, Timeout: c.timeout, Keep: c.keep, SwitchUID: c.switchUID}
	if c.mode.NS {
		if r.Ns, err = zdtm.NewNsRoot(static, c.mode.UserNS); err != nil {
			fmt.Fprintf(os.Stderr, "zdtm: the ns flavour's root: %v\n", err)
			return 2
		}
		defer func() {
			if err := r.Ns.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
			}
		}()
	}
	if c.verbose {
		r.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "  "+format+"\n", args...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()

	fmt.Printf("# %s, mode %s, %d tests, logs in %s\n", eng.Name(), c.mode, len(tests), c.work)
	var counts zdtm.Counts
	for _, n := range tests {
		if ctx.Err() != nil {
			break
		}
		res := r.Run(ctx, static, n)
		counts.Add(res.Status)
		reason := res.Reason
		if res.Step != "" {
			reason = res.Step + ": " + reason
		}
		fmt.Printf("%s %s  %.2f  %s\n", res.Status, res.Test, res.Seconds, reason)
		if c.results != "" {
			if err := zdtm.AppendResult(c.results, res); err != nil {
				fmt.Fprintf(os.Stderr, "zdtm: %v\n", err)
				return 2
			}
		}
	}
	fmt.Println(counts)
	if counts.Failed > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

func writeTable(path, mode, suite string, srcs []string) error {
	if len(srcs) == 0 {
		return fmt.Errorf("--table needs results: --from FILE or --results FILE")
	}
	res, err := zdtm.ReadResults(srcs...)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range srcs {
		names = append(names, "`"+filepath.Base(s)+"`")
	}
	var b bytes.Buffer
	if err := zdtm.WriteTable(&b, res, mode, suite, names); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

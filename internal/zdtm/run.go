package zdtm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/procfs"
)

// Mode is how a test is checkpointed and restarted.
type Mode struct {
	Iters    int  // checkpoint/restart cycles in a row (at least 1)
	Snapshot bool // a --leave-running checkpoint before each real one
	PreCopy  bool // the checkpoint copies memory while the test runs first
	Filter   bool // restart through the engine's identity filter
	NS       bool // the ns flavour: the test in namespaces of its own (NsRoot)
	// UserNS, with NS, is the uns flavour: a user namespace too, with
	// zdtm's ranges of ids mapped (ZDTM_USERNS).
	UserNS bool
}

// String names the mode in results: plain, iters=3+snapshot, ...
func (m Mode) String() string {
	var p []string
	switch {
	case m.NS && m.UserNS:
		p = append(p, "uns")
	case m.NS:
		p = append(p, "ns")
	}
	if m.Iters > 1 {
		p = append(p, "iters="+strconv.Itoa(m.Iters))
	}
	if m.Snapshot {
		p = append(p, "snapshot")
	}
	if m.PreCopy {
		p = append(p, "pre-copy")
	}
	if m.Filter {
		p = append(p, "filter")
	}
	if len(p) == 0 {
		return "plain"
	}
	return strings.Join(p, "+")
}

// Status of a test run.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Skip = "SKIP"
)

// Result is one test run by one engine: a line of a results file.
type Result struct {
	Test    string  `json:"test"`
	Engine  string  `json:"engine"`
	Mode    string  `json:"mode"`
	Status  string  `json:"status"`
	Step    string  `json:"step,omitempty"` // where it failed: start, checkpoint, restart, result, ...
	Reason  string  `json:"reason,omitempty"`
	Seconds float64 `json:"seconds"`
	When    string  `json:"when"` // RFC 3339
}

// Runner runs tests one at a time through one engine.
type Runner struct {
	Engine  Engine
	Mode    Mode
	Machine Machine
	Work    string        // a directory for images and logs, one subdirectory per test
	Timeout time.Duration // per step; a .desc timeout above it wins
	Keep    bool          // keep images of passing tests
	// SwitchUID runs tests that are not 'suid' as uid 18943 as zdtm.py
	// does. Without CAP_SYS_RESOURCE CRIU cannot read such a process's
	// rlimits (prlimit), so by default every test runs as root.
	SwitchUID bool
	// Logf, if set, gets progress lines.
	Logf func(format string, args ...any)
	// Ns is the ns flavour's root, for Mode.NS.
	Ns *NsRoot
}

// inheritedFds marks every fd above 2 close-on-exec once, so that nothing
// that started the driver reaches a test: shells here leak a pipe (fd
// 251), and a test that inherits it has an external pipe that a correct
// checkpoint refuses.
var inheritedFds sync.Once

// Run runs test name and always cleans up every process it started.
func (r *Runner) Run(ctx context.Context, dir, name string) Result {
	inheritedFds.Do(func() { _ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) })
	t := LoadTest(dir, name)
	start := time.Now()
	res := Result{Test: name, Engine: r.Engine.Name(), Mode: r.Mode.String(), When: start.UTC().Format(time.RFC3339)}
	finish := func(status, step, reason string) Result {
		res.Status, res.Step, res.Reason = status, step, oneLine(reason)
		res.Seconds = time.Since(start).Seconds()
		return res
	}
	if s := SkipReason(t, r.Machine); s != "" {
		return finish(Skip, "", s)
	}
	if s := CheckSkip(ctx, t); s != "" {
		return finish(Skip, "", s)
	}
	if _, ok := r.Engine.(*Criu); ok {
		if r.Mode.Filter {
			return finish(Skip, "", "CRIU has no filter step")
		}
		// As zdtm.py --pre: without soft-dirty CRIU's pre-dump hits a BUG().
		if r.Mode.PreCopy && r.Machine.Feature != nil && !r.Machine.Feature("mem_dirty_track") {
			return finish(Skip, "", "no mem_dirty_track feature: CRIU cannot pre-dump")
		}
	}
	argv, err := CommandLine(ctx, t.Dir, name)
	if err != nil {
		return finish(Skip, "", err.Error())
	}
	t.Argv = argv
	if r.Mode.NS {
		if r.Ns == nil {
			return finish(Fail, "start", "the ns flavour needs a root (Runner.Ns)")
		}
		undo, err := r.Ns.Prepare(ctx, t)
		if err != nil {
			return finish(Fail, "start", err.Error())
		}
		defer undo()
		t.Ns = r.Ns
	}
	step, err := r.run(ctx, t)
	if err != nil {
		var se *StepError
		if errors.As(err, &se) {
			return finish(Fail, se.Step, se.Reason)
		}
		return finish(Fail, step, err.Error())
	}
	return finish(Pass, "", "")
}

func (r *Runner) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

func (r *Runner) timeout(t *Test) time.Duration {
	d := r.Timeout
	if d <= 0 {
		d = 30 * time.Second
	}
	if td := time.Duration(t.Desc.Timeout) * time.Second; td > d {
		d = td
	}
	return d
}

// cleanout removes what an earlier run of the test left, as the static
// Makefile's NAME.cleanout does, its mounts too.
func cleanout(t *Test) {
	unmountLeft(t)
	n := t.Name
	for _, g := range []string{n + ".pid*", n + ".out*", "*" + n + ".test*", n + ".*.test", n + ".*.state", n + ".state", "chew_" + n + ".test*"} {
		m, _ := filepath.Glob(filepath.Join(t.Dir, g))
		for _, p := range m {
			_ = os.RemoveAll(p)
		}
	}
}

// unmountLeft unmounts what the test mounted in its directory and left
// mounted (cgroup_ignore cannot unmount its cgroup2 while it holds a file
// there open; the next run cannot mount it again on the same directory),
// last mounted first.
func unmountLeft(t *Test) []string {
	mounts, err := procfs.ReadMountinfo(os.Getpid())
	if err != nil {
		return nil
	}
	var left []string
	for i := len(mounts) - 1; i >= 0; i-- {
		mp := mounts[i].MountPoint
		rel, err := filepath.Rel(t.Dir, mp)
		if err != nil || !strings.HasPrefix(rel, t.Name+".") || strings.HasPrefix(rel, "..") {
			continue
		}
		if unix.Unmount(mp, unix.MNT_DETACH) == nil {
			left = append(left, rel)
		}
	}
	return left
}

// env is the environment zdtm.py gives a host-flavour test.
func testEnv(t *Test, switchUID bool) []string {
	env := os.Environ()
	if v := os.Getenv("TMPDIR"); v == "" {
		env = append(env, "TMPDIR=/tmp")
	}
	env = append(env, "ZDTM_THREAD_BOMB=5")
	if t.Desc.HasFlag("pre-dump-notify") {
		// The test waits on fd 100 for word of each pre-dump, and reads
		// EINTR there when told to stop: without the fds it fails at once.
		env = append(env, "ZDTM_NOTIFY_FDIN=100", "ZDTM_NOTIFY_FDOUT=101")
	}
	if switchUID && !t.Desc.HasFlag("suid") {
		env = append(env, "ZDTM_UID=18943", "ZDTM_GID=58467", "ZDTM_GROUPS=27495 48244")
	}
	return env
}

// readsImages says whether the test's hook reads CRIU's images (with
// pycriu, from ZDTM_IMG_DIR), which crsub does not write.
func readsImages(t *Test) bool {
	b, err := os.ReadFile(t.Path(".hook"))
	return err == nil && (bytes.Contains(b, []byte("pycriu")) || bytes.Contains(b, []byte("ZDTM_IMG_DIR")))
}

// hook runs NAME.hook ARG if the test has one, from the test directory as
// zdtm.py does.
func (r *Runner) hook(ctx context.Context, t *Test, work string, env []string, arg string) error {
	p := t.Path(".hook")
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout(t))
	defer cancel()
	log := filepath.Join(work, "hook"+arg+".log")
	rel := filepath.Join("zdtm", "static", t.Name+".hook")
	if err := runLogged(ctx, filepath.Join(t.Dir, "..", ".."), log, []string{rel, arg}, env); err != nil {
		r := logReason(log)
		if r == "" {
			r = err.Error()
		}
		return &StepError{Step: "hook " + arg, Reason: r, Log: log}
	}
	return nil
}

func (r *Runner) run(ctx context.Context, t *Test) (step string, err error) {
	tmo := r.timeout(t)
	work := filepath.Join(r.Work, r.Engine.Name(), t.Name)
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "start", err
	}
	cleanout(t)
	env := testEnv(t, r.SwitchUID)
	if t.Ns != nil {
		env = append(env, t.Ns.env(t)...)
	}

	var rules map[string][]string
	if touchesNetfilter(t) {
		rules = netfilterRules()
	}
	var pid, sid, launcher int
	defer func() {
		if pid == 0 {
			if p, err := readPidfile(t); err == nil {
				pid = p
			}
		}
		if kerr := killTree([]int{pid}, []int{pid, sid, launcher}, tmo); kerr != nil && err == nil {
			step, err = "cleanup", kerr
		}
		_ = r.hook(context.Background(), t, work, env, "--clean")
		if left := unmountLeft(t); len(left) > 0 {
			r.logf("%s: unmounted what it left mounted: %s", t.Name, strings.Join(left, ", "))
		}
		if rules != nil {
			if rm := removeNewRules(rules); len(rm) > 0 {
				r.logf("%s: removed firewall rules it left: %s", t.Name, strings.Join(rm, "; "))
			}
		}
		if err == nil && !r.Keep {
			_ = os.RemoveAll(work)
		}
	}()

	// Start: the launcher forks the test, which writes NAME.pid when its
	// state is built; the launcher exits then.
	r.logf("%s: start %s", t.Name, strings.Join(t.Argv, " "))
	// zdtm.py runs the --post-start hook while the launcher still waits:
	// net_lock_socket_* only write NAME.pid once their hook connected.
	var hookErr error
	hookDone := make(chan struct{})
	postStart := func() {
		defer close(hookDone)
		hookErr = r.hook(ctx, t, work, append(env[:len(env):len(env)], "ZDTM_TEST_PID="), "--post-start")
	}
	launcher, err = startTest(ctx, t, filepath.Join(work, "start.log"), env, tmo, postStart)
	<-hookDone
	if err != nil {
		reason := outFailure(t)
		if reason == "" {
			reason = logReason(filepath.Join(work, "start.log"))
		}
		return "start", fmt.Errorf("%v: %s", err, reason)
	}
	if pid, err = readPidfile(t); err != nil {
		return "start", err
	}
	if st, err := readStat(pid); err == nil {
		sid = st.sid
	}
	env = append(env, "ZDTM_TEST_PID="+strconv.Itoa(pid))
	if hookErr != nil {
		return "hook", hookErr
	}

	for i := 1; i <= max(r.Mode.Iters, 1); i++ {
		if err := r.hook(ctx, t, work, env, "--pre-dump"); err != nil {
			return "hook", err
		}
		if r.Mode.Snapshot {
			cctx, cancel := context.WithTimeout(ctx, tmo)
			err := r.Engine.Checkpoint(cctx, t, pid, r.Engine.Image(work, i, true), CheckpointOpts{LeaveRunning: true})
			cancel()
			if err != nil {
				return stepOf(err, "snapshot"), err
			}
		}
		tree := treeOf([]int{pid}, []int{sid})
		img := r.Engine.Image(work, i, false)
		r.logf("%s: checkpoint %d of %v", t.Name, i, tree)
		cctx, cancel := context.WithTimeout(ctx, tmo)
		err := r.Engine.Checkpoint(cctx, t, pid, img, CheckpointOpts{PreCopy: r.Mode.PreCopy})
		cancel()
		if err != nil {
			return stepOf(err, "checkpoint"), err
		}
		// The checkpoint killed the tree; pid 1 reaps it, slowly.
		wctx, cancel := context.WithTimeout(ctx, tmo)
		err = waitGone(wctx, tree, false)
		cancel()
		if err != nil {
			return "checkpoint", fmt.Errorf("the checkpointed tree did not go: %v", err)
		}
		if r.Mode.Filter {
			fctx, cancel := context.WithTimeout(ctx, tmo)
			img, err = r.Engine.Filter(fctx, t, img)
			cancel()
			if err != nil {
				return stepOf(err, "filter"), err
			}
		}
		_ = os.Remove(t.Path(".pid"))
		if err := r.hook(ctx, t, work, env, "--pre-restore"); err != nil {
			return "hook", err
		}
		r.logf("%s: restart %d", t.Name, i)
		rctx, cancel := context.WithTimeout(ctx, tmo)
		err = r.Engine.Restore(rctx, t, img)
		cancel()
		if err != nil {
			return stepOf(err, "restart"), err
		}
		np, err := readPidfile(t)
		if err != nil {
			return "restart", err
		}
		switch {
		case np != pid && t.Ns != nil:
			// The init of a pid namespace of its own: its pid outside
			// need not be kept (CRIU does not; zdtm.py reads it again).
			pid = np
			if st, err := readStat(pid); err == nil {
				sid = st.sid
			}
		case np != pid:
			return "restart", fmt.Errorf("restored root is pid %d, not %d", np, pid)
		}
		if !alive(pid, true) {
			return "restart", fmt.Errorf("restored pid %d is not running: %s", pid, outFailure(t))
		}
		if _, ok := r.Engine.(*Criu); ok || !readsImages(t) {
			// Some post-restore hooks read CRIU's images (ZDTM_IMG_DIR);
			// the others check the restored test from outside.
			henv := append(env[:len(env):len(env)], "ZDTM_IMG_DIR="+work)
			if err := r.hook(ctx, t, work, henv, "--post-restore"); err != nil {
				return "hook", err
			}
		}
	}

	// Stop: the test checks itself on SIGTERM and writes PASS or FAIL.
	r.logf("%s: SIGTERM %d", t.Name, pid)
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return "result", fmt.Errorf("SIGTERM %d: %v", pid, err)
	}
	wctx, cancel := context.WithTimeout(ctx, tmo)
	err = waitGone(wctx, []int{pid}, true)
	cancel()
	if err != nil {
		return "result", fmt.Errorf("no exit %v after SIGTERM: %s", tmo, outFailure(t))
	}
	if !outPassed(t) {
		reason := outFailure(t)
		if reason == "" {
			reason = "no PASS in " + t.Name + ".out"
		}
		return "result", errors.New(reason)
	}
	return "", nil
}

// startTest runs the test's launcher in a process group of its own and
// waits for it to exit (it does once the test wrote NAME.pid). On a
// timeout the launcher and everything it started are killed.
// postStart runs (in a goroutine) once the launcher started.
func startTest(ctx context.Context, t *Test, log string, env []string, tmo time.Duration, postStart func()) (int, error) {
	f, err := os.Create(log)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fmt.Fprintf(f, "+ %s\n", strings.Join(t.Argv, " "))
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	cmd := exec.Command(filepath.Join(t.Dir, t.Argv[0]), t.Argv[1:]...)
	cmd.Args[0] = t.Argv[0]
	cmd.Dir, cmd.Env = t.RunDir(), env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		go postStart()
		return 0, err
	}
	go postStart()
	l := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(tmo)
	defer timer.Stop()
	select {
	case err := <-done:
		return l, err
	case <-ctx.Done():
	case <-timer.C:
	}
	_ = killTree([]int{l}, []int{l}, tmo)
	<-done
	return l, fmt.Errorf("no %s.pid after %v", t.Name, tmo)
}

func stepOf(err error, dflt string) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Step
	}
	return dflt
}

func readPidfile(t *Test) (int, error) {
	b, err := os.ReadFile(t.Path(".pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s.pid: %q is not a pid", t.Name, b)
	}
	return pid, nil
}

// outPassed reads NAME.out as zdtm.py does: PASS among the words of its
// last lines.
func outPassed(t *Test) bool {
	b, err := os.ReadFile(t.Path(".out"))
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	for _, w := range strings.Fields(strings.Join(lines, " ")) {
		if w == "PASS" {
			return true
		}
	}
	return false
}

// outFailure returns the failure lines of NAME.out (FAIL, ERR and error
// messages), or its last line.
func outFailure(t *Test) string {
	b, err := os.ReadFile(t.Path(".out"))
	if err != nil {
		if b, err = os.ReadFile(t.Path(".out.inprogress")); err != nil {
			return ""
		}
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "FAIL") || strings.Contains(l, "ERR") || strings.Contains(l, "rror") {
			keep = append(keep, stripOutPrefix(l))
		}
	}
	if len(keep) == 0 {
		return stripOutPrefix(lastLine(string(b)))
	}
	if len(keep) > 4 {
		keep = keep[:4]
	}
	return strings.Join(keep, " | ")
}

// stripOutPrefix drops the "12:34:56.789: 1234: " a zdtm test prints
// before each message.
func stripOutPrefix(l string) string {
	l = strings.TrimSpace(l)
	for i := 0; i < 2; i++ {
		j := strings.Index(l, ": ")
		if j <= 0 || strings.Trim(l[:j], "0123456789:.") != "" {
			break
		}
		l = strings.TrimSpace(l[j+2:])
	}
	return l
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

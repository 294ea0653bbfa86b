package zdtm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Engine checkpoints and restarts a test with one checkpoint/restart tool.
type Engine interface {
	Name() string
	// Image names the image of checkpoint iter (from 1) under work;
	// snapshot is the --leave-running one taken before it.
	Image(work string, iter int, snapshot bool) string
	// Checkpoint checkpoints the tree of pid into img. Unless leaveRunning,
	// the tree is killed once the image is written.
	Checkpoint(ctx context.Context, t *Test, pid int, img string, o CheckpointOpts) error
	// Filter rewrites img through the engine's identity filter, returning
	// the image to restart.
	Filter(ctx context.Context, t *Test, img string) (string, error)
	// Restore restarts img detached; the restored root's pid goes to the
	// test's pidfile.
	Restore(ctx context.Context, t *Test, img string) error
}

// CheckpointOpts are the variations of a checkpoint a mode asks for.
type CheckpointOpts struct {
	LeaveRunning bool
	PreCopy      bool
}

// StepError is a failed engine command: the step, and the reason to
// print (crsub's last error line, or CRIU's first "Error" line).
type StepError struct {
	Step   string
	Reason string
	Log    string
}

func (e *StepError) Error() string { return e.Step + ": " + e.Reason }

// runLogged runs argv with stdin /dev/null and stdout and stderr to log
// (truncated), and nothing else open.
func runLogged(ctx context.Context, dir, log string, argv []string, env []string) error {
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "+ %s\n", strings.Join(argv, " "))
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, f, f
	cmd.WaitDelay = 0
	err = cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out")
	}
	return err
}

// logReason is the last non-empty line of log that is not the command
// line runLogged wrote first.
func logReason(log string) string {
	b, err := os.ReadFile(log)
	if err != nil {
		return ""
	}
	l := lastLine(string(b))
	if strings.HasPrefix(l, "+ ") {
		return ""
	}
	return l
}

// Crsub runs bin/crsub.
type Crsub struct {
	Bin string
}

func (c *Crsub) Name() string { return "crsub" }

func (c *Crsub) Image(work string, iter int, snapshot bool) string {
	if snapshot {
		return filepath.Join(work, fmt.Sprintf("snap-%d.img", iter))
	}
	return filepath.Join(work, fmt.Sprintf("ckpt-%d.img", iter))
}

// A test's CRIU options (.desc opts, dopts, ropts) mostly have no crsub
// counterparts: established TCP connections, file locks, external unix
// sockets and the rest are always handled (or refused) by crsub. The
// cgroup ones, a restore's --tcp-close (opts or ropts: the connections
// back closed) and a network namespace to join (--join-ns net:PATH,
// crsub's --netns) do: crsubOptions turns them into crsub's.

// cgroupModes maps CRIU's --manage-cgroups modes to crsub restart's
// --cgroups.
var cgroupModes = map[string]string{"": "create", "soft": "create", "none": "join", "props": "settings", "full": "full", "strict": "strict", "ignore": "ignore"}

// crsubOptions are the crsub options for CRIU options criu of a test, for
// a checkpoint or a restart: --cgroup-root for both, --manage-cgroups
// becoming restart's --cgroups.
func crsubOptions(criu []string, restart bool) ([]string, error) {
	var out []string
	for i := 0; i < len(criu); i++ {
		name, value, hasValue := strings.Cut(criu[i], "=")
		switch name {
		case "--manage-cgroups":
			mode, ok := cgroupModes[value]
			if !ok {
				return nil, fmt.Errorf("--manage-cgroups=%s: unknown mode", value)
			}
			if restart {
				out = append(out, "--cgroups="+mode)
			}
		case "--tcp-close":
			if restart {
				out = append(out, "--tcp-close")
			}
		case "--join-ns":
			if i+1 == len(criu) {
				return nil, errors.New("--join-ns without a value")
			}
			i++
			if path, ok := strings.CutPrefix(criu[i], "net:"); ok && restart {
				out = append(out, "--netns", path)
			}
		case "--cgroup-root":
			if !hasValue {
				if i+1 == len(criu) {
					return nil, errors.New("--cgroup-root without a value")
				}
				i++
				value = criu[i]
			}
			out = append(out, "--cgroup-root", value)
		}
	}
	return out, nil
}

func (c *Crsub) Checkpoint(ctx context.Context, t *Test, pid int, img string, o CheckpointOpts) error {
	argv := []string{c.Bin, "checkpoint", "--pid", fmt.Sprint(pid), "-o", img, "-q"}
	if o.LeaveRunning {
		argv = append(argv, "--leave-running")
	}
	if o.PreCopy {
		argv = append(argv, "--pre-copy")
	}
	extra, err := crsubOptions(append(slices.Clone(t.Desc.Opts), t.Desc.Dopts...), false)
	if err != nil {
		return &StepError{Step: "checkpoint", Reason: err.Error()}
	}
	argv = append(argv, extra...)
	step := "checkpoint"
	if o.LeaveRunning {
		step = "snapshot"
	}
	return c.run(ctx, t, img+".log", step, argv)
}

func (c *Crsub) Filter(ctx context.Context, t *Test, img string) (string, error) {
	out := strings.TrimSuffix(img, ".img") + ".filtered.img"
	return out, c.run(ctx, t, out+".log", "filter", []string{c.Bin, "filter", "-i", img, "-o", out})
}

func (c *Crsub) Restore(ctx context.Context, t *Test, img string) error {
	argv := []string{c.Bin, "restart", "-i", img, "--detach", "--pidfile", t.Path(".pid"), "-q"}
	extra, err := crsubOptions(append(slices.Clone(t.Desc.Opts), t.Desc.Ropts...), true)
	if err != nil {
		return &StepError{Step: "restart", Reason: err.Error()}
	}
	argv = append(argv, extra...)
	return c.run(ctx, t, img+".restart.log", "restart", argv)
}

func (c *Crsub) run(ctx context.Context, t *Test, log, step string, argv []string) error {
	err := runLogged(ctx, t.Dir, log, argv, os.Environ())
	if err == nil {
		return nil
	}
	r := logReason(log)
	if r == "" || err.Error() == "timed out" {
		r = strings.TrimSpace(r + " (" + err.Error() + ")")
	}
	return &StepError{Step: step, Reason: r, Log: log}
}

// Criu runs CRIU's command line as zdtm.py does, with --shell-job and
// the .desc's opts, dopts and ropts.
type Criu struct {
	Bin string
}

func (c *Criu) Name() string { return "criu" }

func (c *Criu) Image(work string, iter int, snapshot bool) string {
	if snapshot {
		return filepath.Join(work, fmt.Sprintf("snap-%d", iter))
	}
	return filepath.Join(work, fmt.Sprintf("dump-%d", iter))
}

func (c *Criu) Checkpoint(ctx context.Context, t *Test, pid int, img string, o CheckpointOpts) error {
	if o.PreCopy {
		// zdtm.py's --pre needs mem_dirty_track (soft-dirty), which this
		// kernel lacks; a pre-dump without it copies everything again.
		if err := os.MkdirAll(img+".pre", 0o755); err != nil {
			return err
		}
		if err := c.run(ctx, t, img+".pre", "pre-dump", []string{c.Bin, "pre-dump", "-t", fmt.Sprint(pid), "-D", img + ".pre",
			"-o", "pre-dump.log", "-v4", "--shell-job"}, t.Desc.Opts, t.Desc.Dopts); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(img, 0o755); err != nil {
		return err
	}
	argv := []string{c.Bin, "dump", "-t", fmt.Sprint(pid), "-D", img, "-o", "dump.log", "-v4", "--shell-job", "--timeout", "10"}
	step := "dump"
	if o.LeaveRunning {
		argv = append(argv, "--leave-running")
		step = "snapshot"
	}
	if o.PreCopy {
		argv = append(argv, "--prev-images-dir", "../"+filepath.Base(img)+".pre")
	}
	if t.Ns != nil {
		// As zdtm.py: the root, and the tests' /dev an external mount.
		argv = append(argv, "--root", t.Ns.Root, "--external", "mnt[/dev]:ZDTM_DEV")
	}
	return c.run(ctx, t, img, step, argv, t.Desc.Opts, t.Desc.Dopts)
}

func (c *Criu) Filter(ctx context.Context, t *Test, img string) (string, error) {
	return "", errors.New("CRIU has no filter step")
}

func (c *Criu) Restore(ctx context.Context, t *Test, img string) error {
	argv := []string{c.Bin, "restore", "-d", "-D", img, "-o", "restore.log", "-v4", "--shell-job",
		"--pidfile", t.Path(".pid")}
	if t.Ns != nil {
		argv = append(argv, "--root", t.Ns.Root, "--external", "mnt[ZDTM_DEV]:"+t.Ns.Dev)
	}
	return c.run(ctx, t, img, "restore", argv, t.Desc.Opts, t.Desc.Ropts)
}

func (c *Criu) run(ctx context.Context, t *Test, dir, step string, argv []string, opts ...[]string) error {
	for _, o := range opts {
		argv = append(argv, o...)
	}
	out := filepath.Join(dir, step+".out")
	// From the test directory, as zdtm.py runs CRIU: relative paths in
	// .desc options (cgroup_yard's --cgroup-yard) and hooks expect it.
	err := runLogged(ctx, filepath.Join(t.Dir, "..", ".."), out, argv, os.Environ())
	if err == nil {
		return nil
	}
	log := filepath.Join(dir, map[string]string{"snapshot": "dump", "pre-dump": "pre-dump", "dump": "dump", "restore": "restore"}[step]+".log")
	r := firstError(log)
	if r == "" {
		r = logReason(out)
	}
	if r == "" || err.Error() == "timed out" {
		r = strings.TrimSpace(r + " (" + err.Error() + ")")
	}
	return &StepError{Step: step, Reason: r, Log: log}
}

// firstError returns CRIU's first "Error (file:line): message" from log,
// without the timestamp and pid prefix.
func firstError(log string) string {
	f, err := os.Open(log)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		// Every run without CAP_SYS_RESOURCE logs this one; it is harmless.
		if strings.Contains(l, "Can't setup RLIMIT_NOFILE for self") {
			continue
		}
		if i := strings.Index(l, "Error ("); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return ""
}

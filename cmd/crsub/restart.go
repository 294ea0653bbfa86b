package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/preserve"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

func runRestart(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restart", "-i IMAGE|- [--fd N=SPEC]... [--inherit-fd N]... [--detach] [--pidfile FILE]", stderr)
	input := fs.StringP("input", "i", "", "image file to restart, or - for standard input")
	detach := fs.Bool("detach", false, "return once the process runs instead of waiting for it")
	pidfile := fs.String("pidfile", "", "write the restored root pid to FILE")
	fdSpecs := fs.StringArray("fd", nil, "give fd N (of process PID; default the root) a new source instead of the image's: [PID:]N=SPEC, SPEC one of file:PATH[,append,trunc,create|nocreate,mode=0640,ro|wo|rw] (write modes create a missing file), null, tcp-listen:HOST:PORT[,backlog=N], tcp:HOST:PORT, udp:HOST:PORT, unix-listen:PATH, unix:PATH, fd:M, exec:COMMAND (repeatable)")
	inherit := fs.IntSlice("inherit-fd", nil, "keep crsub's own fd N at N in the restored process (repeatable)")
	hookCreated := fs.String("hook-tasks-created", "", "run `CMD` (with sh -c) once every task exists, before any runs; CRSUB_PIDS holds the pids; a failure aborts the restart")
	hookRelease := fs.String("hook-before-release", "", "run `CMD` (with sh -c) when every task is restored, just before they run; CRSUB_PIDS holds the pids; a failure aborts the restart")
	parent := fs.String("parent", "", "the parent image of an incremental image, if not where the image says")
	pidns := fs.Bool("pidns", false, "restore into a new pid namespace: the root becomes pid 1 there")
	cgroups := fs.String("cgroups", restart.CgroupsCreate.String(), "what becomes of the cgroups the image records (the tasks' own and the ones below them): `MODE` create (tasks join them; missing ones are made with their owner, mode and settings), ignore (tasks stay in crsub's cgroups), join (they must exist; none is changed), settings (join, and give them their owner, mode and settings), full (create, and existing ones get their settings too), strict (full, but one that exists already is an error)")
	cgroupRoots := fs.StringArray("cgroup-root", nil, "put the recorded cgroups of a hierarchy under `[HIERARCHY:]/PATH`: each cgroup the image records as a root (the tasks' own, or the checkpoint's --cgroup-root) becomes PATH, with what is below it; HIERARCHY as for checkpoint --cgroup-root, none for every hierarchy not named (repeatable)")
	tcpClose := fs.Bool("tcp-close", false, "restore the image's TCP connections closed: reads see their end, writes fail; their peers are let go")
	root := fs.String("root", "", "the root filesystem (a directory) of the image's mount namespace, in place of the one it had")
	mountMaps := fs.StringArray("mount-map", nil, "an external mount of the image's mount namespace that moved: OLD=NEW, OLD its path as the image has it (repeatable)")
	netns := fs.String("netns", "", "join this network namespace instead of making the image's again: a file (/run/netns/NAME) or pid:N (process N's); filled from the image if empty, else checked against it (`PATH|pid:N`)")
	links := fs.StringArray("link", nil, "use a host link for a link of the image: moved into the namespace, renamed, given the image's addresses and routes (`NAME=HOSTLINK`, repeatable)")
	stateDir := fs.String("state-dir", restart.DefaultStateDir, "`DIR` where a restart lists the cgroups it makes and the files it makes while it runs, so that the next restart removes those a killed one left")
	pidWait := fs.Duration("pid-wait", restart.DefaultOptions().PidWait, "how long to wait for an original pid still held by a dying or unreaped process")
	quiet := fs.BoolP("quiet", "q", false, "no progress line on a terminal")
	verbose := fs.BoolP("verbose", "v", false, "log progress")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case *input == "":
		return usageError{"needs -i IMAGE (or -i - for standard input)"}
	}
	opts := restart.DefaultOptions()
	var err error
	if opts.Cgroups, err = restart.ParseCgroupMode(*cgroups); err != nil {
		return usageError{"--cgroups: " + err.Error()}
	}
	if opts.CgroupRoots, err = parseCgroupRoots(*cgroupRoots); err != nil {
		return err
	}
	opts.Log = newLogger(stderr, *verbose)
	opts.PidNamespace = *pidns
	opts.TCPClose = *tcpClose
	if *root != "" {
		if opts.Root, err = filepath.Abs(*root); err != nil {
			return err
		}
	}
	for _, m := range *mountMaps {
		from, to, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(from) || to == "" {
			return usageError{fmt.Sprintf("--mount-map %q: want OLD=NEW, OLD an absolute path", m)}
		}
		if opts.MountMap == nil {
			opts.MountMap = map[string]string{}
		}
		if _, dup := opts.MountMap[from]; dup {
			return usageError{fmt.Sprintf("--mount-map for %s given twice", from)}
		}
		if opts.MountMap[from], err = filepath.Abs(to); err != nil {
			return err
		}
	}
	if *netns != "" {
		n, err := substitute.ParseNamespace("net", *netns)
		if err != nil {
			return usageError{"--netns: " + err.Error()}
		}
		opts.Namespaces = map[string]substitute.Namespace{"net": n}
	}
	for _, l := range *links {
		name, host, ok := strings.Cut(l, "=")
		if !ok || name == "" || host == "" {
			return usageError{fmt.Sprintf("--link %q: want NAME=HOSTLINK", l)}
		}
		if opts.Links == nil {
			opts.Links = map[string]string{}
		}
		if _, dup := opts.Links[name]; dup {
			return usageError{fmt.Sprintf("--link %s given twice", name)}
		}
		opts.Links[name] = host
	}
	opts.PidWait = *pidWait
	opts.StateDir = *stateDir
	opts.Parent = *parent
	if *input != "-" {
		opts.ImageDir = filepath.Dir(*input)
	}
	bar := newProgress(stderr, "restart: restored", *quiet)
	opts.Progress = func(done int64) { bar.update(done, 0) }
	opts.Substitutes = map[int]substitute.Source{}
	opts.ProcessSubstitutes = map[int]map[int]substitute.Source{}
	for _, spec := range *fdSpecs {
		pid, num, src, err := parseFdSpec(spec)
		if err != nil {
			return usageError{err.Error()}
		}
		subs := opts.Substitutes
		if pid != 0 {
			if opts.ProcessSubstitutes[pid] == nil {
				opts.ProcessSubstitutes[pid] = map[int]substitute.Source{}
			}
			subs = opts.ProcessSubstitutes[pid]
		}
		if _, dup := subs[num]; dup {
			return usageError{fmt.Sprintf("--fd %s given twice", strings.SplitN(spec, "=", 2)[0])}
		}
		subs[num] = src
	}
	for _, fd := range *inherit {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return usageError{fmt.Sprintf("--inherit-fd %d: crsub has no fd %d", fd, fd)}
		}
		if _, dup := opts.Substitutes[fd]; dup {
			return usageError{fmt.Sprintf("fd %d has both --fd and --inherit-fd", fd)}
		}
		opts.Preserve = append(opts.Preserve, fd)
	}
	if *hookCreated != "" {
		opts.TasksCreated = hookCommand("--hook-tasks-created", *hookCreated, stderr)
	}
	if *hookRelease != "" {
		opts.BeforeRelease = hookCommand("--hook-before-release", *hookRelease, stderr)
	}
	in, closeIn, err := openInput(*input)
	if err != nil {
		return err
	}
	defer closeIn()
	// A launcher hands preserved fds across exec in the environment.
	if _, err := preserve.FromEnviron(os.Environ()); err != nil {
		return err
	}

	// Catch the signals to forward before the process exists, so none is
	// lost between its release and the forwarding loop.
	sigs := make(chan os.Signal, 4)
	if !*detach {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
		defer signal.Stop(sigs)
	}
	p, err := restart.Restart(context.Background(), in, opts)
	bar.done()
	if err != nil {
		return restartError(err)
	}
	for num, o := range p.Substituted {
		if o.Port != 0 || o.Addr != "" {
			fmt.Fprintf(stderr, "crsub restart: fd %d: %s\n", num, o.Desc)
		}
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(p.Pid)+"\n"), 0o644); err != nil {
			return fmt.Errorf("process %d runs, but writing the pidfile failed: %w", p.Pid, err)
		}
	}
	if *detach {
		return nil
	}
	go func() {
		for s := range sigs {
			_ = p.Signal(s.(syscall.Signal))
		}
	}()
	ws, err := p.Wait()
	if err != nil {
		return err
	}
	switch {
	case ws.Exited():
		return exitStatus(ws.ExitStatus())
	case ws.Signaled():
		return exitStatus(128 + int(ws.Signal()))
	}
	return exitStatus(1)
}

// parseFdSpec splits [PID:]N=SPEC; pid 0 means the root process.
func parseFdSpec(s string) (int, int, substitute.Source, error) {
	target, spec, ok := strings.Cut(s, "=")
	if !ok {
		return 0, 0, substitute.Source{}, fmt.Errorf("--fd %q: want [PID:]N=SPEC, e.g. 1=file:/var/log/app.log,append", s)
	}
	pid := 0
	if p, n, ok := strings.Cut(target, ":"); ok {
		var err error
		if pid, err = strconv.Atoi(p); err != nil || pid <= 0 {
			return 0, 0, substitute.Source{}, fmt.Errorf("--fd %q: %q is not a pid", s, p)
		}
		target = n
	}
	num, err := strconv.Atoi(target)
	if err != nil || num < 0 {
		return 0, 0, substitute.Source{}, fmt.Errorf("--fd %q: %q is not an fd number", s, target)
	}
	src, err := substitute.Parse(spec)
	if err != nil {
		return 0, 0, substitute.Source{}, fmt.Errorf("--fd %s: %w", target, err)
	}
	return pid, num, src, nil
}

// hookCommand runs a shell command with the restored pids in CRSUB_PIDS
// (space-separated, root first); its output goes to crsub's stderr.
func hookCommand(flag, command string, stderr io.Writer) func([]int) error {
	return func(pids []int) error {
		list := make([]string, len(pids))
		for i, p := range pids {
			list[i] = strconv.Itoa(p)
		}
		cmd := exec.Command("/bin/sh", "-c", command)
		cmd.Env = append(os.Environ(), "CRSUB_PIDS="+strings.Join(list, " "))
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %q: %w", flag, command, err)
		}
		return nil
	}
}

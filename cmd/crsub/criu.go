package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	flag "github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/criurpc"
	"github.com/crsub/crsub/criurpc/rpcpb"
	"github.com/crsub/crsub/internal/buildinfo"
)

// criuCommands are the commands of CRIU's command line that crsub answers
// when it is run as criu (a link named criu, where runtimes and users look
// for CRIU). Their options are CRIU's, mapped onto the requests CRIU's RPC
// sends, and served as those are; an option crsub does not know is refused
// by name.
var criuCommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"dump":        criuDump,
	"pre-dump":    criuDump,
	"restore":     criuRestore,
	"check":       criuCheck,
	"service":     criuService,
	"page-server": criuPageServer,
	"swrk":        func(args []string, stdout, stderr io.Writer) error { return runSwrk(args[1:], stdout, stderr) },
}

// runCriu is main for crsub run as criu. As CRIU's, every failure exits 1,
// a command line it cannot parse included (crsub's own commands exit 2
// for those).
func runCriu(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: criu dump|pre-dump|restore|check|swrk|service|page-server [OPTIONS] (crsub's CRIU command line)")
		return exitFailure
	}
	switch args[0] {
	case "-V", "--version":
		fmt.Fprintf(stdout, "Version: %d.%d\ncrsub %s, answering CRIU's interface\n", criurpc.InterfaceMajor, criurpc.InterfaceMinor, buildinfo.Version)
		return exitOK
	case "-h", "--help":
		fmt.Fprintln(stdout, "usage: criu dump|pre-dump|restore|check|swrk|service|page-server [OPTIONS]\n\ncrsub answering as CRIU; 'criu COMMAND --help' lists a command's options.")
		return exitOK
	}
	run, ok := criuCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "criu: crsub does not answer %q (it answers dump, pre-dump, restore, check, swrk, service, page-server and --version, the command first)\n", args[0])
		return exitFailure
	}
	err := run(args, stdout, stderr)
	var ue usageError
	var ex exitStatus
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "criu %s: %s\n", args[0], ue.msg)
		return exitFailure
	case errors.As(err, &ex):
		return int(ex)
	}
	fmt.Fprintf(stderr, "criu %s: %v\n", args[0], err)
	return exitFailure
}

// criuFlags are the options dump, pre-dump and restore share.
type criuFlags struct {
	fs                                  *flag.FlagSet
	imagesDir, workDir, logFile, root   *string
	verbosity                           *int
	shellJob, tcpEstablished, extUnixSk *bool
	fileLocks, displayStats             *bool
	external, actionScripts             *[]string
	manageCgroups, config               *string
	noDefaultConfig                     *bool
}

func newCriuFlags(cmd, synopsis string, stderr io.Writer) *criuFlags {
	fs := newProgramFlags("criu", cmd, synopsis, stderr)
	f := &criuFlags{fs: fs}
	f.imagesDir = fs.StringP("images-dir", "D", ".", "directory of the image (crsub's one file, "+criurpc.ImageName+")")
	f.workDir = fs.StringP("work-dir", "W", "", "directory for the log, pidfile and statistics (default: the images directory)")
	f.logFile = fs.StringP("log-file", "o", "", "log to FILE in the work directory instead of standard error")
	f.verbosity = fs.IntP("verbosity", "v", 2, "log level: 0 none, 1 errors, 2 warnings, 3 information, 4 debug (-v4, or -v… once per level above 1)")
	f.shellJob = fs.BoolP("shell-job", "j", false, "accepted: crsub checkpoints a tree whose session or terminal is outside it in any case")
	f.tcpEstablished = fs.Bool("tcp-established", false, "accepted: crsub checkpoints established TCP connections in any case")
	f.extUnixSk = fs.BoolP("ext-unix-sk", "x", false, "accepted: crsub records unix sockets connected outside the tree as external in any case")
	f.fileLocks = fs.BoolP("file-locks", "l", false, "accepted: crsub checkpoints file locks in any case")
	f.displayStats = fs.Bool("display-stats", false, "log the statistics")
	f.root = fs.StringP("root", "r", "", "root directory of the tree (crsub: its own root only)")
	f.external = fs.StringArray("external", nil, "an external resource, KIND[ID]:VALUE (repeatable)")
	f.manageCgroups = fs.String("manage-cgroups", "", "cgroup mode: soft or default (crsub puts the tree back in its cgroups, making missing ones)")
	fs.Lookup("manage-cgroups").NoOptDefVal = "soft"
	fs.String("network-lock", "", "accepted (iptables, nftables, skip): crsub holds the tree's TCP connections still with a table of its own while it works")
	f.config = fs.String("config", "", "a CRIU configuration file, beneath these options and over the default ones")
	f.actionScripts = fs.StringArray("action-script", nil, "run `PROGRAM` at each phase, named in CRTOOLS_SCRIPT_ACTION (repeatable)")
	f.noDefaultConfig = fs.Bool("no-default-config", false, "read neither /etc/criu/default.conf nor ~/.criu/default.conf")
	return f
}

// parseCriu parses a criu command's arguments (the command first), CRIU's
// -v forms included; criu commands take no operands.
func parseCriu(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if err := parse(fs, verbosityArgs(args[1:]), stdout); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// verbosityArgs turns CRIU's -v forms (-v4, -vvv, -v) into pflag's
// --verbosity=N, counting each v above the default level 2 as CRIU does.
var repeatedV = regexp.MustCompile(`^-(v+)$`)

func verbosityArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "--" {
			break
		}
		if m := repeatedV.FindStringSubmatch(a); m != nil {
			a = "--verbosity=" + strconv.Itoa(2+len(m[1]))
		} else if n, ok := strings.CutPrefix(a, "-v"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			a = "--verbosity=" + n
		}
		out = append(out, a)
	}
	return append(out, args[len(out):]...)
}

// parse parses args (command first) and fills the options they share.
func (f *criuFlags) parse(args []string, stdout io.Writer) (*rpcpb.CriuOpts, error) {
	if err := parseCriu(f.fs, args, stdout); err != nil {
		return nil, err
	}
	images, err := filepath.Abs(*f.imagesDir)
	if err != nil {
		return nil, err
	}
	// Only what the command line says: a configuration file gives the
	// rest (criu.Config.ConfigFiles).
	o := &rpcpb.CriuOpts{
		ImagesDirFd: ptr(int32(-1)),
		ImagesDir:   &images,
		LogToStderr: ptr(*f.logFile == ""),
		External:    *f.external,
	}
	changed := func(name string) bool { return f.fs.Changed(name) }
	if changed("verbosity") {
		o.LogLevel = ptr(int32(*f.verbosity))
	}
	for _, b := range []struct {
		name  string
		flag  *bool
		field **bool
	}{{"shell-job", f.shellJob, &o.ShellJob}, {"tcp-established", f.tcpEstablished, &o.TcpEstablished},
		{"ext-unix-sk", f.extUnixSk, &o.ExtUnixSk}, {"file-locks", f.fileLocks, &o.FileLocks}, {"display-stats", f.displayStats, &o.DisplayStats}} {
		if changed(b.name) {
			*b.field = b.flag
		}
	}
	if *f.logFile != "" {
		o.LogFile = f.logFile
	}
	if *f.root != "" {
		o.Root = f.root
	}
	switch *f.manageCgroups {
	case "":
	case "soft":
		o.ManageCgroupsMode = rpcpb.CriuCgMode_SOFT.Enum()
	case "default":
		o.ManageCgroupsMode = rpcpb.CriuCgMode_DEFAULT.Enum()
	default:
		return nil, usageError{fmt.Sprintf("--manage-cgroups %s: crsub has the soft mode only (it puts the tree back in its cgroups, making missing ones)", *f.manageCgroups)}
	}
	return o, nil
}

// session is the configuration of the command's session: the
// configuration files CRIU reads beneath its command line, in CRIU's
// order, and the action scripts.
func (f *criuFlags) session(stderr io.Writer) criurpc.Config {
	files := criurpc.DefaultConfigFiles(*f.noDefaultConfig)
	if *f.config != "" {
		files = append(files, *f.config)
	}
	return criurpc.Config{Stderr: stderr, ConfigFiles: files, ActionScripts: *f.actionScripts}
}

// workDir opens the work directory, for the request to name as crsub's
// own fd, and returns its path (for the pidfile).
func (f *criuFlags) openWorkDir(o *rpcpb.CriuOpts) (*os.File, string, error) {
	dir := o.GetImagesDir()
	if *f.workDir != "" {
		var err error
		if dir, err = filepath.Abs(*f.workDir); err != nil {
			return nil, "", err
		}
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("work directory: %w", err)
	}
	o.WorkDirFd = ptr(int32(d.Fd()))
	return d, dir, nil
}

func criuDump(args []string, stdout, stderr io.Writer) error {
	f := newCriuFlags(args[0], "-t PID -D DIR [OPTIONS]", stderr)
	pid := f.fs.IntP("tree", "t", 0, "root of the tree to checkpoint")
	leave := f.fs.BoolP("leave-running", "R", false, "let the tree run on after the checkpoint")
	prev := f.fs.String("prev-images-dir", "", "directory of an earlier (pre-)dump, relative to the images directory: only pages changed since are stored")
	f.fs.Bool("track-mem", false, "accepted: crsub compares pages with the earlier image instead of tracking writes")
	pageServer := f.fs.Bool("page-server", false, "send the image to a criu page-server at --address and --port (a copy stays here, "+criurpc.SentImageName+")")
	psAddress := f.fs.String("address", "", "the page server's address")
	psPort := f.fs.Int("port", 0, "the page server's port")
	o, err := f.parse(args, stdout)
	if err != nil {
		return err
	}
	if *pid <= 0 {
		return usageError{"needs -t PID"}
	}
	o.Pid = ptr(int32(*pid))
	if *pageServer {
		if *psPort <= 0 {
			return usageError{"--page-server needs --port"}
		}
		o.Ps = &rpcpb.CriuPageServerInfo{Address: psAddress, Port: ptr(int32(*psPort))}
	}
	o.LeaveRunning = leave
	if *prev != "" {
		o.ParentImg = prev
	}
	t := rpcpb.CriuReqType_DUMP
	if args[0] == "pre-dump" {
		t = rpcpb.CriuReqType_PRE_DUMP
	}
	dir, _, err := f.openWorkDir(o)
	if err != nil {
		return err
	}
	defer dir.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	_, err = criurpc.NewCommandLine(f.session(stderr)).Handle(ctx, &rpcpb.CriuReq{Type: &t, Opts: o})
	return err
}

func criuRestore(args []string, stdout, stderr io.Writer) error {
	f := newCriuFlags(args[0], "-D DIR [-d] [--pidfile FILE] [--inherit-fd fd[N]:KEY]... [OPTIONS]", stderr)
	detach := f.fs.BoolP("restore-detached", "d", false, "return once the tree runs instead of waiting for its root")
	pidfile := f.fs.String("pidfile", "", "write the root's pid to FILE (relative to the work directory)")
	inherit := f.fs.StringArray("inherit-fd", nil, "fd[N]:KEY: crsub's fd N in place of the image's file KEY (pipe:[INODE], socket:[INODE], tty[RDEV:DEV], a path without its leading /) (repeatable)")
	cgRoots := f.fs.StringArray("cgroup-root", nil, "[CONTROLLER:]PATH: the cgroup that takes the place of the root's (repeatable)")
	o, err := f.parse(args, stdout)
	if err != nil {
		return err
	}
	for _, spec := range *inherit {
		in, err := criurpc.ParseInheritFd(spec)
		if err != nil {
			return usageError{"--inherit-fd " + err.Error()}
		}
		o.InheritFd = append(o.InheritFd, in)
	}
	for _, spec := range *cgRoots {
		o.CgRoot = append(o.CgRoot, criurpc.ParseCgroupRoot(spec))
	}
	dir, workDir, err := f.openWorkDir(o)
	if err != nil {
		return err
	}
	defer dir.Close()
	if *pidfile != "" && !filepath.IsAbs(*pidfile) {
		*pidfile = filepath.Join(workDir, *pidfile)
	}
	t := rpcpb.CriuReqType_RESTORE
	resp, err := criurpc.NewCommandLine(f.session(stderr)).Handle(context.Background(), &rpcpb.CriuReq{Type: &t, Opts: o})
	if err != nil {
		return err
	}
	pid := int(resp.GetRestore().GetPid())
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			return fmt.Errorf("process %d runs, but writing the pidfile failed: %w", pid, err)
		}
	}
	if *detach {
		return nil
	}
	// As CRIU: the root is crsub's child, waited for; crsub then exits 0.
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("wait4", err)
		}
		return nil
	}
}

func criuCheck(args []string, stdout, stderr io.Writer) error {
	fs := newProgramFlags("criu", "check", "[--feature NAME]", stderr)
	feature := fs.String("feature", "", "say whether crsub has feature NAME (mem_dirty_track, lazy_pages, uffd-noncoop…)")
	fs.Bool("all", false, "accepted: crsub's check is one")
	fs.Bool("extra", false, "accepted: crsub's check is one")
	if err := parseCriu(fs, args, stdout); err != nil {
		return err
	}
	if *feature != "" {
		ok, err := criurpc.Feature(*feature)
		if err != nil {
			return usageError{err.Error()}
		}
		if !ok {
			fmt.Fprintf(stdout, "%s is not supported\n", *feature)
			return exitStatus(exitFailure)
		}
		fmt.Fprintf(stdout, "%s is supported\n", *feature)
		return nil
	}
	t := rpcpb.CriuReqType_CHECK
	if _, err := criurpc.NewCommandLine(criurpc.Config{Stderr: stderr}).Handle(context.Background(), &rpcpb.CriuReq{Type: &t}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Looks good.")
	return nil
}

func ptr[T any](v T) *T { return &v }

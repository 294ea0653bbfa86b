// Command crsub checkpoints a Linux process tree into an image and restarts
// it, optionally with some of its file descriptors replaced.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	flag "github.com/spf13/pflag"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// usageError makes main exit with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func commands() map[string]command {
	list := []command{
		{"checkpoint", "write an image of a running process", runCheckpoint},
		{"restart", "restart a process from an image", runRestart},
		{"show", "print what an image holds (a readelf for images)", runShow},
		{"filter", "drop or replace fds in an image, and what only they used", runFilter},
		{"version", "print crsub's version", runVersion},
		{"swrk", "serve a container runtime's CRIU requests on socket FD (what runc, crun and podman run as criu swrk FD)", runSwrk},
	}
	m := map[string]command{}
	for _, c := range list {
		m[c.name] = c
	}
	return m
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: crsub COMMAND [OPTIONS]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'crsub COMMAND --help' for a command's options.")
}

func main() {
	// Run through a link named criu, crsub answers CRIU's command line,
	// where runtimes and users look for CRIU.
	if filepath.Base(os.Args[0]) == "criu" {
		os.Exit(runCriu(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "--version":
		args = []string{"version"}
	}
	c, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "crsub: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := c.run(args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "crsub %s: %s\n", c.name, ue.msg)
		return exitUsage
	default:
		var ex exitStatus
		if errors.As(err, &ex) {
			return int(ex)
		}
		fmt.Fprintf(stderr, "crsub %s: %v\n", c.name, err)
		return exitFailure
	}
}

// exitStatus makes main exit with a given status without printing anything:
// `crsub restart` passes on the restored process's status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newFlags makes a subcommand's flag set: GNU-style long flags, --help, and
// errors returned rather than printed and exited.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	return newProgramFlags("crsub", name, synopsis, stderr)
}

// newProgramFlags is newFlags for a command of program: crsub's, or
// CRIU's (crsub run as criu).
func newProgramFlags(program, name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(program+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s %s\n\n%s", program, name, synopsis, flagUsages(fs))
	}
	return fs
}

// parse parses args and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	}
	if err != nil {
		return usageError{strings.TrimSpace(err.Error())}
	}
	return nil
}

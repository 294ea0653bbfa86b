package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/crsub/crsub/criurpc"
)

// runSwrk serves a container runtime's CRIU requests on the socket it
// passed as fd FD, as `criu swrk FD` does. Failures go back to the runtime
// in its responses and in the log it asked for: standard error is often
// the container's own (runc passes its stdio on restore), so nothing is
// printed there.
func runSwrk(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("swrk", "FD", stderr)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"needs the number of the runtime's socket, as criu swrk FD"}
	}
	fd, err := strconv.Atoi(fs.Arg(0))
	if err != nil || fd < 0 {
		return usageError{fmt.Sprintf("%q is not an fd number", fs.Arg(0))}
	}
	// An interrupted checkpoint must still put the tree back as it was;
	// a runtime gone mid-way must be an error, not a SIGPIPE.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	// As CRIU's swrk: the default configuration files lie beneath every
	// request, and one that cannot be read stops it at once.
	cfg := criurpc.Config{Stderr: stderr, ConfigFiles: criurpc.DefaultConfigFiles(false)}
	if err := criurpc.CheckConfigFiles(cfg.ConfigFiles); err != nil {
		return err
	}
	err = criurpc.Serve(ctx, os.NewFile(uintptr(fd), "criu-swrk"), cfg)
	var failed *criurpc.RequestError
	if errors.As(err, &failed) {
		return exitStatus(exitFailure)
	}
	return err
}

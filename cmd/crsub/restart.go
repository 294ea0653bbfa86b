package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/crsub/crsub/restart"
)

func runRestart(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restart", "-i IMAGE|- [--detach] [--pidfile FILE]", stderr)
	input := fs.StringP("input", "i", "", "image file to restart, or - for standard input")
	detach := fs.Bool("detach", false, "return once the process runs instead of waiting for it")
	pidfile := fs.String("pidfile", "", "write the restored root pid to FILE")
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
	in, closeIn, err := openInput(*input)
	if err != nil {
		return err
	}
	defer closeIn()
	opts := restart.DefaultOptions()
	opts.Log = newLogger(stderr, *verbose)

	// Catch the signals to forward before the process exists, so none is
	// lost between its release and the forwarding loop.
	sigs := make(chan os.Signal, 4)
	if !*detach {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
		defer signal.Stop(sigs)
	}
	p, err := restart.Restart(context.Background(), in, opts)
	if err != nil {
		return err
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

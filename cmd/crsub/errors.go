package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/crsub/crsub/imagefilter"
	"github.com/crsub/crsub/restart"
)

// worded is an error the CLI says in its own terms (its flags), keeping the
// library's error underneath for errors.Is and errors.As.
type worded struct {
	msg string
	err error
}

func (e *worded) Error() string { return e.msg }
func (e *worded) Unwrap() error { return e.err }

// fdFlag is how --fd names an fd of pid: "3" for the root's, "11:3" for
// another process's.
func fdFlag(pid, fd, root int) string {
	if pid == root || pid == 0 {
		return fmt.Sprint(fd)
	}
	return fmt.Sprintf("%d:%d", pid, fd)
}

// restartError says a restart's error with the options that fix it: the
// library's errors name fds and processes, the CLI adds which --fd or
// --inherit-fd to give.
func restartError(err error) error {
	var sub *restart.SubstituteError
	var shared *imagefilter.SharedError
	if errors.As(err, &sub) && errors.As(err, &shared) {
		var names, flags []string
		for _, o := range shared.Others {
			n := fdFlag(o.Pid, o.Fd, sub.Root)
			if o.Pid == sub.Root || o.Pid == 0 {
				names = append(names, fmt.Sprintf("fd %d", o.Fd))
				flags = append(flags, fmt.Sprintf("--fd %s=SPEC (or --inherit-fd %d)", n, o.Fd))
			} else {
				names = append(names, fmt.Sprintf("fd %d of pid %d", o.Fd, o.Pid))
				flags = append(flags, fmt.Sprintf("--fd %s=SPEC", n))
			}
		}
		return &worded{fmt.Sprintf("fd %d of pid %d shares its open file with %s; replace them together: add %s",
			shared.Fd, shared.Pid, strings.Join(names, ", "), strings.Join(flags, ", ")), err}
	}
	var rec *restart.RecordError
	var file *restart.FileError
	if errors.As(err, &rec) && rec.Fd >= 0 && errors.As(err, &file) {
		n := fdFlag(rec.Pid, rec.Fd, rec.Root)
		what := "a substitute" // "external file needs a substitute" said it already
		if errors.Is(err, restart.ErrExternal) {
			what = "one"
		}
		return &worded{fmt.Sprintf("%v; give it %s with --fd %s=SPEC, e.g. --fd %s=null or --fd %s=file:PATH", err, what, n, n, n), err}
	}
	return err
}

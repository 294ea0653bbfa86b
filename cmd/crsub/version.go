package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/buildinfo"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", stderr)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"takes no arguments"}
	}
	fmt.Fprintf(stdout, "crsub %s", buildinfo.Version)
	if rev := buildinfo.Revision(); rev != "" {
		fmt.Fprintf(stdout, " (%.12s)", rev)
	}
	fmt.Fprintf(stdout, ", image format %d.%d, %s/%s, %s\n", ckpt.MajorVersion, ckpt.MinorVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return nil
}

package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	flag "github.com/spf13/pflag"
)

func TestFlagUsages(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SortFlags = false
	fs.Bool("leave-running", false, "let it run")
	fs.StringP("output", "o", "", "image `FILE`")
	fs.Int("pre-copy", 0, "rounds")
	fs.Lookup("pre-copy").NoOptDefVal = "2"
	fs.Duration("pid-wait", 10*time.Second, "wait")
	fs.String("stats", "text", "format")
	fs.BoolP("verbose", "v", false, "log")
	want := "" +
		"      --leave-running       let it run\n" +
		"  -o, --output FILE         image FILE\n" +
		"      --pre-copy int[=2]    rounds\n" +
		"      --pid-wait duration   wait (default 10s)\n" +
		"      --stats string        format (default \"text\")\n" +
		"  -v, --verbose             log\n"
	if diff := cmp.Diff(want, flagUsages(fs)); diff != "" {
		t.Errorf("flagUsages (-want +got):\n%s", diff)
	}
}

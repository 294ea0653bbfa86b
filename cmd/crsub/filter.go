package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/crsub/crsub/imagefilter"
	"github.com/crsub/crsub/internal/atomicfile"
)

func runFilter(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("filter", "-i IMAGE|- -o FILE|- [--drop [PID:]FD]... [--replace [PID:]FD]...", stderr)
	input := fs.StringP("input", "i", "", "image to read, or - for standard input")
	output := fs.StringP("output", "o", "", "image file to write, or - for standard output")
	drops := fs.StringArray("drop", nil, "remove fd FD of process PID (default: the root process), and what only it used (repeatable)")
	replaces := fs.StringArray("replace", nil, "keep fd FD of process PID but mark its file as supplied at restart, removing its contents and what only it used (repeatable)")
	verbose := fs.BoolP("verbose", "v", false, "log every record removed or rewritten")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case *input == "":
		return usageError{"needs -i IMAGE (or -i - for standard input)"}
	case *output == "":
		return usageError{"needs -o FILE (or -o - for standard output)"}
	}
	var rules []imagefilter.Rule
	for _, list := range []struct {
		specs  []string
		action imagefilter.Action
	}{{*drops, imagefilter.Drop}, {*replaces, imagefilter.Replace}} {
		for _, s := range list.specs {
			r, err := imagefilter.ParseRule(s, list.action)
			if err != nil {
				return usageError{fmt.Sprintf("--%s %s: %v", list.action, s, err)}
			}
			rules = append(rules, r)
		}
	}
	opts := imagefilter.DefaultOptions()
	opts.Log = newLogger(stderr, *verbose)

	in, closeIn, err := openInput(*input)
	if err != nil {
		return err
	}
	defer closeIn()
	var rep *imagefilter.Report
	filter := func(w io.Writer) error {
		var err error
		rep, err = imagefilter.Filter(w, in, rules, opts)
		return err
	}
	if *output == "-" {
		err = filter(stdout)
	} else {
		err = writeFileAtomically(*output, filter)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, filterSummary(rep))
	return nil
}

// writeFileAtomically writes a file beside its destination and renames it
// into place only once it is complete and on disk, so that no reader, and no
// crash, ever sees half an image; on failure the destination is untouched.
// Images hold process memory: the file is private to its owner. A device or
// FIFO (-o /dev/null) is written in place.
func writeFileAtomically(path string, write func(io.Writer) error) error {
	if dev, err := openInPlace(path); dev != nil || err != nil {
		if err != nil {
			return err
		}
		if err := write(dev); err != nil {
			dev.Close()
			return err
		}
		return dev.Close()
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// filterSummary is one line: what was dropped and replaced, what it cost.
func filterSummary(rep *imagefilter.Report) string {
	var parts []string
	if s := filterFdList(rep.Dropped); s != "" {
		parts = append(parts, "dropped "+s)
	}
	if s := filterFdList(rep.Replaced); s != "" {
		parts = append(parts, fmt.Sprintf("replaced %s (%s supplied at restart)", s, filterPlural(rep.Supplied, "file")))
	}
	if len(parts) == 0 {
		parts = append(parts, "no rules: image copied unchanged")
	}
	line := "crsub filter: " + strings.Join(parts, "; ")
	if rep.RemovedRecords > 0 || rep.RemovedBytes > 0 {
		line += fmt.Sprintf("; removed %s and %s of payload", filterPlural(rep.RemovedRecords, "record"), filterPlural(int(rep.RemovedBytes), "byte"))
	}
	return line
}

// fdList names fds grouped by process: "fds 0, 4 of pid 4242".
func filterFdList(rules []imagefilter.Rule) string {
	var pids []int
	byPid := map[int][]string{}
	for _, r := range rules {
		if _, ok := byPid[r.Pid]; !ok {
			pids = append(pids, r.Pid)
		}
		byPid[r.Pid] = append(byPid[r.Pid], fmt.Sprint(r.Fd))
	}
	var groups []string
	for _, pid := range pids {
		fds := byPid[pid]
		word := "fd"
		if len(fds) > 1 {
			word = "fds"
		}
		groups = append(groups, fmt.Sprintf("%s %s of pid %d", word, strings.Join(fds, ", "), pid))
	}
	return strings.Join(groups, ", ")
}

func filterPlural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

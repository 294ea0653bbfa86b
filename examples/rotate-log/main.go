// Command rotate-log rotates the log file of a running process the way
// logrotate would, without the process's help: it checkpoints the process
// into memory, renames LOG to LOG.1, and restarts the process, same pid,
// with every fd that had LOG open now writing to a fresh LOG.
//
//	rotate-log -pid PID -log /var/log/app.log
//
// It uses the crsub library (packages checkpoint, restart, substitute)
// directly, not the crsub command. The restored process is a child of this
// launcher, which exits right after printing its pid: the process then
// belongs to init (or the nearest subreaper), as a daemon would.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/checkpoint"
	"github.com/crsub/crsub/restart"
	"github.com/crsub/crsub/substitute"
)

func main() {
	pid := flag.Int("pid", 0, "process whose log to rotate")
	logPath := flag.String("log", "", "the log file it writes to; renamed to LOG.1")
	verbose := flag.Bool("v", false, "log crsub's progress on stderr")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: rotate-log -pid PID -log LOG [-v]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *pid <= 0 || *logPath == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	var log *slog.Logger
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r, err := Rotate(context.Background(), *pid, *logPath, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rotate-log: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "rotate-log: %s -> %s; fds %v of pid %d now write to a fresh %s\n",
		r.Log, r.Rotated, r.Fds, r.Process.Pid, r.Log)
	// The restored process is our child; we simply exit and it lives on.
	fmt.Println(r.Process.Pid)
}

// Rotation is what Rotate did.
type Rotation struct {
	Log     string           // the log path, absolute
	Rotated string           // where the old log went: Log + ".1"
	Fds     []int            // the process's fds that had Log open, now on the new Log
	Process *restart.Process // the restored process, a child of the caller
}

// Rotate checkpoints process pid into memory (which kills it once the image
// is complete), renames logPath to logPath.1, and restarts the process from
// the image with every fd that had logPath open replaced by a fresh
// logPath, opened in append mode and created if needed. log receives
// progress; nil means silent.
//
// If the rename fails, the process is restarted as it was, on its old log,
// and Rotate returns the error with the process. If the restart fails, the
// image is saved to a file whose path the error gives, for `crsub restart`.
func Rotate(ctx context.Context, pid int, logPath string, log *slog.Logger) (*Rotation, error) {
	abs, err := filepath.Abs(logPath)
	if err != nil {
		return nil, err
	}
	if strings.Contains(abs, ",") {
		return nil, fmt.Errorf("%s: a substitute file path cannot contain ','", abs)
	}
	rot := &Rotation{Log: abs, Rotated: abs + ".1"}
	src, err := substitute.Parse("file:" + abs + ",append,create")
	if err != nil {
		return nil, err
	}

	// Which fds point to the log? Decided before the checkpoint, while
	// /proc/PID/fd still names the file the process really has open.
	if rot.Fds, err = fdsOn(pid, abs); err != nil {
		return nil, err
	}
	if len(rot.Fds) == 0 {
		return nil, fmt.Errorf("pid %d has no fd open on %s", pid, abs)
	}

	// Checkpoint into memory. On error the process is left running.
	var img bytes.Buffer
	copts := checkpoint.DefaultOptions()
	copts.Log = log
	if _, err := checkpoint.Checkpoint(ctx, pid, &img, copts); err != nil {
		return nil, err
	}
	// From here the process is dead and only img holds it: whatever
	// happens, restart it. If it was our own child, its zombie holds the
	// pid until we reap it.
	if err := reapIfChild(pid, 5*time.Second); err != nil {
		return nil, fmt.Errorf("%w; %s", err, saveImage(pid, img.Bytes(), ""))
	}

	ropts := restart.DefaultOptions()
	ropts.Log = log
	renameErr := os.Rename(abs, rot.Rotated)
	if renameErr == nil {
		ropts.Substitutes = map[int]substitute.Source{}
		for _, fd := range rot.Fds {
			ropts.Substitutes[fd] = src
		}
	}
	// restart.Restart reads the image through; keep img's bytes for a
	// rescue file should it fail.
	p, err := restart.Restart(ctx, bytes.NewReader(img.Bytes()), ropts)
	if err != nil {
		hint := ""
		for _, fd := range rot.Fds {
			if s, ok := ropts.Substitutes[fd]; ok {
				hint += fmt.Sprintf(" --fd %d=%s", fd, s)
			}
		}
		return nil, fmt.Errorf("%w; %s", err, saveImage(pid, img.Bytes(), hint))
	}
	rot.Process = p
	if renameErr != nil {
		return rot, fmt.Errorf("log not rotated, pid %d restarted on its old log: %w", p.Pid, renameErr)
	}
	return rot, nil
}

// fdsOn lists the fds of pid whose file is path: the same name in
// /proc/PID/fd (readlink), or the same file (inode) under another name.
func fdsOn(pid int, path string) ([]int, error) {
	want, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	canon := path
	if c, err := filepath.EvalSymlinks(path); err == nil {
		canon = c
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if link == path || link == canon {
			fds = append(fds, n)
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && os.SameFile(fi, want) {
			fds = append(fds, n)
		}
	}
	slices.Sort(fds)
	return fds, nil
}

// reapIfChild reaps pid, killed by the checkpoint, if it is the caller's
// child (a launcher that started the process itself); otherwise its parent
// does. The caller must not wait for pid itself during the checkpoint: a
// wait in the tracer's own process takes the ptrace stops the checkpoint
// waits for.
func reapIfChild(pid int, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ECHILD || got == pid:
			return nil // not ours, or reaped
		case err != nil:
			return fmt.Errorf("reaping pid %d: %w", pid, err)
		case time.Now().After(end):
			return fmt.Errorf("pid %d, our child, still not dead %v after the checkpoint", pid, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// saveImage writes an image a failed restart left only in memory to a
// file, and says where (or why not) and how to restart it (with args).
func saveImage(pid int, img []byte, args string) string {
	f, err := os.CreateTemp("", fmt.Sprintf("rotate-log-%d-*.img", pid))
	if err == nil {
		_, err = f.Write(img)
		err = errors.Join(err, f.Sync(), f.Close())
		if err == nil {
			return fmt.Sprintf("the image is saved in %s: crsub restart -i %s%s", f.Name(), f.Name(), args)
		}
		os.Remove(f.Name())
	}
	return fmt.Sprintf("the image could not be saved either (%v): pid %d is lost", err, pid)
}

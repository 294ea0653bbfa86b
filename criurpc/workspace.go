package criurpc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/prototext"
)

// ImageName is the name of crsub's image in the images directory a
// runtime gives: the one stream crsub writes in place of CRIU's many
// files.
const ImageName = "crsub.img"

// defaultLogFile is the log CRIU writes in the work directory when a
// request names none.
const defaultLogFile = "criu.log"

// workspace is where a dump or restore works: the images directory, which
// is crsub's working directory meanwhile (so that a parent image is named
// relative to it, as CRIU's parent_img is), and the work directory, which
// holds the log and the statistics (the images directory unless the
// request names another).
type workspace struct {
	images, work *os.File
	logFile      *os.File
	log          *slog.Logger
}

// workspace opens the directories and the log a request names.
func (s *session) workspace(r *Request) (_ *workspace, err error) {
	w := &workspace{}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	switch {
	case r.ImagesDirFd >= 0:
		if w.images, err = s.openPeerDir(r.ImagesDirFd); err != nil {
			return nil, fmt.Errorf("images_dir_fd %d: %w", r.ImagesDirFd, err)
		}
	case r.ImagesDir != "":
		if w.images, err = os.OpenFile(r.ImagesDir, os.O_RDONLY|unix.O_DIRECTORY, 0); err != nil {
			return nil, fmt.Errorf("images_dir: %w", err)
		}
	default:
		return nil, &RefusedError{Field: "images_dir_fd", Reason: "the request names no images directory (images_dir_fd or images_dir)"}
	}
	if r.WorkDirFd >= 0 {
		if w.work, err = s.openPeerDir(r.WorkDirFd); err != nil {
			return nil, fmt.Errorf("work_dir_fd %d: %w", r.WorkDirFd, err)
		}
	} else if w.work, err = reopen(w.images); err != nil {
		return nil, err
	}
	if err := unix.Fchdir(int(w.images.Fd())); err != nil {
		return nil, fmt.Errorf("into the images directory: %w", os.NewSyscallError("fchdir", err))
	}
	var out io.Writer = io.Discard
	switch {
	case r.LogToStderr && r.LogFile == "":
		if s.cfg.Stderr != nil {
			out = s.cfg.Stderr
		}
	default:
		name := r.LogFile
		if name == "" {
			name = defaultLogFile
		}
		if r.logPath {
			w.logFile, err = w.createPath(name)
		} else {
			w.logFile, err = w.create(name)
		}
		if err != nil {
			return nil, fmt.Errorf("log_file: %w", err)
		}
		out = w.logFile
	}
	w.log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: logLevel(r.LogLevel)}))
	w.log.Debug("request", "from", s.peer, "req", prototext.MarshalOptions{}.Format(s.req))
	return w, nil
}

// logLevel is the slog level that CRIU's log level (0 nothing, 1 errors,
// 2 warnings, 3 information, 4 debug) lets through.
func logLevel(criu int) slog.Level {
	switch {
	case criu <= 0:
		return slog.LevelError + 100
	case criu == 1:
		return slog.LevelError
	case criu == 2:
		return slog.LevelWarn
	case criu == 3:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// create makes (or truncates) a file in the work directory.
func (w *workspace) create(name string) (*os.File, error) {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("%q is not a file name", name)
	}
	return w.createPath(name)
}

// createPath creates the file at path, relative to the work directory if
// it is not absolute: a log a CRIU configuration file names.
func (w *workspace) createPath(path string) (*os.File, error) {
	fd, err := unix.Openat(int(w.work.Fd()), path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// failed puts a request's error in the log as a line a runtime finds:
// runc quotes the lines of CRIU's log that say "Error".
func (w *workspace) failed(err error) {
	if w.logFile != nil {
		fmt.Fprintf(w.logFile, "Error (crsub): %v\n", err)
	}
}

func (w *workspace) close() error {
	return errors.Join(closeFile(w.logFile), closeFile(w.work), closeFile(w.images))
}

func closeFile(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}

// reopen opens the directory f is open on once more.
func reopen(f *os.File) (*os.File, error) {
	return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDONLY|unix.O_DIRECTORY, 0)
}

package restart

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
)

// ErrExternal is wrapped by the *FileError of an fd whose file was outside
// the checkpointed processes (a terminal, a pipe or socket to another
// process): only a substitute can take its place.
var ErrExternal = files.ErrExternal

// RecordError is a restart that failed on one record of the image. It names
// the record; the error it wraps says what went wrong there.
type RecordError struct {
	Index int // the record's index in the stream (0 is the header)
	Type  ckpt.Type
	// Pid and Fd are an fd record's process and fd number; Fd is -1 for
	// any other record.
	Pid, Fd int
	// Root is the pid of the image's root process, the one whose fds
	// Options.Substitutes replace.
	Root int
	What string // the record, for a message: "vma 0x1000-0x2000", "regular /var/log/app.log"
	Err  error
}

func (e *RecordError) Error() string {
	what := e.What
	if e.Fd >= 0 {
		what = fmt.Sprintf("fd %d of pid %d", e.Fd, e.Pid)
	}
	return fmt.Sprintf("image record %d (%s): %v", e.Index, what, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// recordError wraps err, the failure of rec, in a *RecordError, unless
// err is the image's own corruption there, which names the record itself.
func (s *restorer) recordError(rec *ckpt.Record, err error) error {
	var corrupt *ckpt.CorruptError
	if errors.As(err, &corrupt) && corrupt.Record == rec.Index {
		return err
	}
	e := &RecordError{Index: rec.Index, Type: rec.Type, Fd: -1, What: rec.Type.String(), Err: err}
	if len(s.tree.Processes) > 0 {
		e.Root = s.tree.Processes[0].Pid
	}
	switch rec.Type {
	case ckpt.TypeFd:
		var fd ckpt.Fd
		if rec.Decode(&fd) == nil {
			e.Pid, e.Fd = fd.Pid, fd.Fd
		}
	case ckpt.TypeFile:
		var f ckpt.File
		if rec.Decode(&f) == nil {
			e.What = f.Kind
			if f.Path != "" {
				e.What += " " + f.Path
			}
		}
	case ckpt.TypeVMA:
		var v ckpt.VMA
		if rec.Decode(&v) == nil {
			e.What = fmt.Sprintf("vma %#x-%#x", v.Start, v.End)
		}
	}
	return e
}

// FileError is an fd whose file could not be restored (an external file,
// one changed since the checkpoint, a kind this machine cannot make): a
// substitute for the fd takes the file's place without opening it. Its
// message is the cause's; the *RecordError around it names the fd.
type FileError struct {
	Kind string // the file's kind, as the image has it (ckpt.File.Kind)
	Path string // the file's path, where it has one
	Err  error
}

func (e *FileError) Error() string { return e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }

// SubstituteError is a substitute (Options.Substitutes,
// Options.ProcessSubstitutes) or an inherited fd (Options.Preserve) that the
// image does not allow: an fd or a process the image lacks, or an fd whose
// open file it shares with fds not replaced with it (the error wraps an
// *imagefilter.SharedError then).
type SubstituteError struct {
	Pid int // the process whose fd it is
	Fd  int // the fd, or -1 for substitutes for a process the image lacks
	// Root is the pid of the image's root process (0 where the image has
	// no tree): the fds of Options.Substitutes and Options.Preserve are
	// its fds.
	Root      int
	Inherited bool // an inherited fd (Options.Preserve), not a substitute
	Err       error
}

func (e *SubstituteError) Error() string {
	what := "substitute for"
	if e.Inherited {
		what = "inherited"
	}
	if e.Fd < 0 {
		return fmt.Sprintf("substitutes for pid %d: %v", e.Pid, e.Err)
	}
	return fmt.Sprintf("%s fd %d of pid %d: %v", what, e.Fd, e.Pid, e.Err)
}

func (e *SubstituteError) Unwrap() error { return e.Err }

// TaskError is a restart that failed in one phase of rebuilding a process,
// after the image was read.
type TaskError struct {
	Pid   int
	Phase string // "creating the root task", "joining its process group", "rebuilding its state", "releasing"
	Err   error
}

func (e *TaskError) Error() string { return fmt.Sprintf("pid %d: %s: %v", e.Pid, e.Phase, e.Err) }

func (e *TaskError) Unwrap() error { return e.Err }

// PidInUseError is a pid of the image that a live process holds: the
// restart cannot give the checkpointed process its pid back.
type PidInUseError struct {
	Pid   int
	Comm  string // the holder's command name
	State byte   // its state letter in /proc/PID/stat
}

func (e *PidInUseError) Error() string {
	return fmt.Sprintf("pid %d is in use by %q (state %c); it must be free to restore the checkpointed process", e.Pid, e.Comm, e.State)
}

// Unwrap makes the error EEXIST, which is how CRIU's RPC reports it
// (errors.Is(err, syscall.EEXIST)).
func (e *PidInUseError) Unwrap() error { return syscall.EEXIST }

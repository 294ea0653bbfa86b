package ckpt

import (
	"errors"
	"fmt"
)

// ErrVersion is wrapped by errors about an image of an unsupported format
// version.
var ErrVersion = errors.New("unsupported image format version")

// ErrNotImage is wrapped when a stream does not start with Magic.
var ErrNotImage = errors.New("not a crsub image")

// CorruptError reports a damaged or truncated image: where it was noticed
// (byte offset from the start of the stream) and in which record.
type CorruptError struct {
	Offset int64 // byte offset where the problem was found
	Record int   // index of the record being read (0 is the header record); -1 before the first record
	Type   Type  // type of that record, when its header was readable
	Err    error
}

func (e *CorruptError) Error() string {
	where := fmt.Sprintf("offset %d", e.Offset)
	if e.Record >= 0 {
		where = fmt.Sprintf("record %d", e.Record)
		if e.Type != 0 {
			where += fmt.Sprintf(" (%s)", e.Type)
		}
		where += fmt.Sprintf(" at offset %d", e.Offset)
	}
	return fmt.Sprintf("corrupt image: %s: %v", where, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

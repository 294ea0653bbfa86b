// Package imagefilter rewrites a checkpoint image so that chosen file
// descriptors are dropped, or kept with their file marked as supplied by a
// substitute at restart, and so that whatever only those files needed leaves
// the image with them: a pipe both of whose ends were replaced takes its
// buffered bytes along, the contents of a replaced deleted file go, an epoll
// watch on a dropped epoll instance goes too. It reads the image once, front
// to back, and writes the result as it goes, so that `crsub checkpoint -o - |
// crsub filter -i - -o - --replace 1 | crsub restart -i -` works.
//
// The filter understands only fd records (rules name fds) and file records (a
// replaced file is rewritten). Everything else it removes through the
// generic dependency lists, so that record types it does not know are
// treated alike: a record that depends on a removed object is removed, and
// so, transitively, is every record that depends on it.
//
// Garbage: only file, pipe, unix-pair and pty records are collected,
// because they are the only objects that exist in an image just so that
// something refers to them (fds to files, pipe and socket ends to their
// pipes and pairs, terminal descriptions to their pty); one that no
// surviving record depends on is removed. Every other record stays unless it depends on a removed object,
// even if nothing depends on it: a process record may legitimately have no
// dependents (a zombie has no threads, mm or fds), and a record of a type
// this version does not know may mean something on its own.
//
// Objects precede their dependents, so with rules the filter holds each of
// those records back until a surviving record depends on it, emits it
// (with the held records it needs, in their original order) just before that
// record, and discards whatever is still held at the end. Held payloads wait
// in an unlinked temporary file, so memory stays bounded by metadata, not by
// the image's size. Those records may therefore move later in the output,
// never past their first dependent. Without rules nothing is held and
// the output is the input, byte for byte.
//
// Decisions are final when made. A file shared by several fds may only be
// dropped or replaced if a rule covers every fd that shares it. A file whose
// fds were all dropped is removed when the first other record depending on
// it arrives (an epoll watch: checkpoints write watches after the whole fd
// table), and that record goes with it; a record that depends on a file
// before the fd table names it keeps the file as it is, and a later rule to
// replace that file is an error rather than a silently inconsistent image.
// A rule that matches no fd is an error too: a misspelt fd must not yield an
// image that restarts with the original file.
package imagefilter

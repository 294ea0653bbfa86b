// Package atomicfile writes a file that appears under its name only once it
// is complete and on disk, and leaves nothing behind when its writer dies
// first, even by SIGKILL: an image is written into an unnamed file
// (O_TMPFILE) in the destination's directory and linked into place at the
// end. Where the filesystem has no O_TMPFILE, a hidden temporary beside the
// destination stands in, named with its writer's pid so that the next
// writer of the same destination removes it once that pid is gone.
package atomicfile

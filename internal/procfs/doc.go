// Package procfs parses the /proc files a checkpoint engine reads to describe a
// process (maps, smaps, pagemap, stat, status, fdinfo, auxv, fd links, task
// lists, POSIX timers and mountinfo). Every parser takes the file's bytes or an
// io.Reader so it can be tested and fuzzed without /proc, and reports malformed
// input as an error naming the file, line or field rather than panicking; the
// Read… functions are thin helpers that read the real file for a pid. Nothing
// here attaches to or stops the target: callers that need a consistent view
// must freeze it first, because /proc files are read in several system calls
// and can change in between.
package procfs

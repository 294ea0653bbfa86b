// Package substitute opens the replacement resources crsub gives a restored
// process in place of fds it cannot get back (a rotated log file, a listening
// socket, /dev/null for a vanished terminal, a pipe to a log shipper) and puts
// them at the fd numbers the program used. A [Source] comes from a spec such
// as "file:/var/log/app.log,append" or "tcp-listen:[::1]:8080"; it opens with
// the access mode, O_APPEND, O_NONBLOCK and FD_CLOEXEC the checkpoint image
// recorded for the fd it replaces ([OpenOptions]), and [Install] places a
// whole set of them atomically, collision-safe, and marks the targets with
// the preserve package so the restart engine keeps them.
package substitute

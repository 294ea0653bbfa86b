// Package journal keeps the files in which a restart lists what it makes
// outside its tasks (cgroups, names in the file system), so that the next
// restart removes what a killed one left. A journal is a file of its own
// in the state directory, named restart-PID-NANOS followed by its kind's
// suffix, one JSON value a line. Its maker holds an flock on it while it
// lives: one no one holds is abandoned, and Abandoned hands its entries
// to the kind that wrote it, then removes it.
package journal

// Package fsjournal lists the names a restart makes in the file system
// for a moment (a deleted file's ghost while it is filled, a removed
// directory made again until the tasks have opened it, another name
// linked for the moment), so that the names a killed crsub left are
// removed by the next restart.
//
// It is internal/cgroup's journal for files, both kept by internal/journal:
// a file of its own in the state directory, locked while its restart
// lives. Each name is written there once made, with what identifies the
// file (its device and inode, and its file handle where the filesystem
// gives one, which keeps an inode number reused since from being taken
// for it), and again once removed. A name is found again by its
// directory's file handle, opened on a mount of its filesystem in crsub's
// mount namespace: a name made through a mount namespace the restart made
// (/proc/PID/root/...) has no path left once its tasks are dead.
// RemoveAbandoned, at the next restart, removes the names of journals no
// one holds that are still the files they list, then the journals.
package fsjournal

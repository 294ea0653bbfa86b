package ckpt

// MountNamespace is the tree of mounts of a mount namespace, as its
// processes see it from their root (Namespace.Mnt).
type MountNamespace struct {
	// Mounts lists the mounts, each after the one it is mounted on, in
	// the order they were mounted; the first is the namespace's root.
	Mounts []Mount `json:"mounts"`
}

// Mount is one mount of a mount namespace.
type Mount struct {
	// ID is its mount id at checkpoint (/proc/PID/mountinfo), by which
	// Parent names it.
	ID int `json:"id"`
	// Parent is the mount it is on; 0 for the root.
	Parent int `json:"parent,omitempty"`
	// Path is its mount point, from the namespace's root.
	Path string `json:"path"`
	// Dev is its filesystem's device number at checkpoint (st_dev): the
	// mounts of one filesystem have the same, and a MountFiles record of
	// it names it.
	Dev    uint64 `json:"dev"`
	FSType string `json:"fstype"`
	Source string `json:"source"`
	// Root is the directory of its filesystem the mount shows: "/" for
	// all of it, another for a bind mount.
	Root string `json:"root"`
	// File says the mount shows a file, not a directory (a bind mount of
	// a file): its mount point is a file too.
	File bool `json:"file,omitempty"`
	// Deleted says Root was removed (a bind mount of a directory or a
	// file removed since): a restart makes it, mounts it and removes it
	// again.
	Deleted bool `json:"deleted,omitempty"`
	// FileType and FileRdev are, for a mount of a file of a filesystem
	// made anew, the type bits (S_IFCHR, S_IFIFO…; 0 for a regular file)
	// and device number of the file it shows: a restart makes that file
	// of its kind before the filesystem's files come (runc masks paths
	// with binds of its /dev tmpfs's null).
	FileType uint32 `json:"file_type,omitempty"`
	FileRdev uint64 `json:"file_rdev,omitempty"`
	// Flags are its per-mount flags, named as mount(8) does: ro, nosuid,
	// nodev, noexec, noatime, nodiratime, relatime, strictatime,
	// nosymfollow.
	Flags []string `json:"flags,omitempty"`
	// Options are its filesystem's options as /proc/PID/mountinfo shows
	// them (its super options), with which a restart makes it anew.
	Options string `json:"options,omitempty"`
	// External is set for a mount of a filesystem that was mounted
	// outside the namespace too (the container's root filesystem, a
	// directory bind-mounted in): the path, in the checkpointing crsub's
	// namespace, of what the mount shows. A restart bind-mounts that path
	// (or the one restart.Options.Root or MountMap gives) and the image
	// holds nothing of its files. Unset, the filesystem was made in the
	// namespace and a restart makes it anew, once for all its mounts.
	External string `json:"external,omitempty"`
	// Shared is its peer group and Master the peer group it is a slave
	// of, by their ids at checkpoint; 0 for none (a private mount).
	// PidNamespace is, for a proc made in the namespace, the inode of the
	// pid namespace it shows (that of a namespace record, made again
	// before it is); 0 for crsub's.
	PidNamespace uint64 `json:"pid_namespace,omitempty"`
	Shared       int    `json:"shared,omitempty"`
	Master       int    `json:"master,omitempty"`
	Unbindable   bool   `json:"unbindable,omitempty"`
	// SharedOutside says its peer group had mounts outside the namespace
	// too (an external mount shared with the host): a restart makes it a
	// peer of the mount its external path is on again.
	SharedOutside bool `json:"shared_outside,omitempty"`
}

// MountFiles is the files of a filesystem a mount namespace made, that a
// restart makes anew (a tmpfs), record TypeMountFiles, depending on its
// namespace. The payload, Size bytes, is a tar archive (POSIX.1-2001,
// PAX) of its files from its root, "." first: directories, regular files
// with their contents, symbolic links, hard links, devices and FIFOs,
// with their modes, owners, times and extended attributes.
type MountFiles struct {
	// Dev names the filesystem (Mount.Dev).
	Dev   uint64 `json:"dev"`
	Size  int64  `json:"size"`
	Files int    `json:"files"`
}

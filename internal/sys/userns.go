package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// NamespaceOwner is the inode of the user namespace that owns namespace fd
// (ioctl NS_GET_USERNS).
func NamespaceOwner(fd int) (uint64, error) {
	return relatedInode(fd, unix.NS_GET_USERNS, "ioctl(NS_GET_USERNS)")
}

// NamespaceParent is the inode of the parent of namespace fd, a user or pid
// namespace (ioctl NS_GET_PARENT).
func NamespaceParent(fd int) (uint64, error) {
	return relatedInode(fd, unix.NS_GET_PARENT, "ioctl(NS_GET_PARENT)")
}

// relatedInode runs ioctl req, which gives an fd on a namespace related to
// namespace fd, and returns that namespace's inode.
func relatedInode(fd int, req uint, name string) (uint64, error) {
	got, err := retry(func() (int, error) { return unix.IoctlRetInt(fd, req) })
	if err != nil {
		return 0, os.NewSyscallError(name, err)
	}
	defer unix.Close(got)
	var st unix.Stat_t
	if err := unix.Fstat(got, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	return st.Ino, nil
}

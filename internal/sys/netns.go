package sys

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs fn on an OS thread that has entered the network namespace
// of nsfd (a /proc/PID/ns/net or bind-mounted namespace fd). Sockets fn
// makes belong to that namespace for their whole life, and /proc/sys/net
// opened by fn shows its settings.
func InNetNS[T any](nsfd int, fn func() (T, error)) (T, error) {
	return InNamespace(nsfd, unix.CLONE_NEWNET, fn)
}

// nsNames names the /proc/PID/ns/ entry of each namespace type.
var nsNames = map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWPID: "pid",
	unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWTIME: "time", unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWUSER: "user"}

// InNamespace runs fn on an OS thread that has entered the namespace nsfd
// of type nstype (a CLONE_NEW* flag; 0: whatever nsfd is). The thread goes
// back to its own namespace afterwards; if it cannot, it is never used
// again. (Letting every such thread end instead is not enough: the runtime
// cannot end the main thread, which would stay in the namespace, and with
// it what /proc/self/ns/ says.) Not for mnt or user namespaces, which a
// thread of a multithreaded process cannot join.
func InNamespace[T any](nsfd, nstype int, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		var zero T
		runtime.LockOSThread()
		own, err := ownNamespace(nsfd)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{zero, err}
			return
		}
		defer unix.Close(own)
		if err := retryErr(func() error { return unix.Setns(nsfd, nstype) }); err != nil {
			runtime.UnlockOSThread()
			done <- result{zero, os.NewSyscallError("setns", err)}
			return
		}
		v, err := fn()
		if retryErr(func() error { return unix.Setns(own, 0) }) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{v, err}
	}()
	r := <-done
	return r.v, r.err
}

// NamespaceKind names the kind of namespace fd is a file of, as its
// /proc/PID/ns/ entry ("net", "pid"…): whether it was opened there, as a
// bind mount of one (/run/netns/NAME) or otherwise.
func NamespaceKind(fd int) (string, error) {
	typ, err := retry(func() (int, error) { return unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE) })
	if err != nil {
		return "", os.NewSyscallError("ioctl(NS_GET_NSTYPE)", err)
	}
	name, ok := nsNames[typ]
	if !ok {
		return "", fmt.Errorf("namespace of type %#x: not a type crsub knows", typ)
	}
	return name, nil
}

// ownNamespace opens the calling thread's namespace of nsfd's type.
func ownNamespace(nsfd int) (int, error) {
	name, err := NamespaceKind(nsfd)
	if err != nil {
		return -1, err
	}
	path := "/proc/thread-self/ns/" + name
	fd, err := retry(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// NewNetNS makes a network namespace and returns an fd on it; the
// namespace lives as long as the fd or anything else that holds it. The
// thread that makes it by unshare goes back to its own afterwards, as in
// InNetNS.
func NewNetNS() (*FD, error) {
	type result struct {
		fd  *FD
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := retry(func() (int, error) { return unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0) })
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, os.NewSyscallError("open(/proc/thread-self/ns/net)", err)}
			return
		}
		defer unix.Close(own)
		if err := retryErr(func() error { return unix.Unshare(unix.CLONE_NEWNET) }); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, os.NewSyscallError("unshare(CLONE_NEWNET)", err)}
			return
		}
		fd, err := retry(func() (int, error) { return unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0) })
		if retryErr(func() error { return unix.Setns(own, unix.CLONE_NEWNET) }) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			done <- result{nil, os.NewSyscallError("open(/proc/thread-self/ns/net)", err)}
			return
		}
		done <- result{NewFD(fd), nil}
	}()
	r := <-done
	return r.fd, r.err
}

// SocketNetNS opens the network namespace socket sock belongs to (the
// one it was made in), as SIOCGSKNS gives it.
func SocketNetNS(sock int) (*FD, error) {
	nsfd, err := retry(func() (int, error) { return unix.IoctlRetInt(sock, unix.SIOCGSKNS) })
	if err != nil {
		return nil, os.NewSyscallError("ioctl(SIOCGSKNS)", err)
	}
	return NewFD(nsfd), nil
}

// InCallersNetNS says whether socket fd belongs to the calling process's
// network namespace (/proc/self/ns/net), as SIOCGSKNS tells.
func InCallersNetNS(sock int) (bool, error) {
	nsfd, err := SocketNetNS(sock)
	if err != nil {
		return false, err
	}
	defer nsfd.Close()
	return isCallersNetNS(nsfd.Int())
}

// isCallersNetNS says whether the namespace nsfd is the calling process's
// network namespace.
func isCallersNetNS(nsfd int) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(nsfd, &theirs); err != nil {
		return false, os.NewSyscallError("fstat", err)
	}
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		return false, &os.PathError{Op: "stat", Path: "/proc/self/ns/net", Err: err}
	}
	return theirs.Ino == ours.Ino && theirs.Dev == ours.Dev, nil
}

// SocketBeside makes a socket (socket(2)'s domain, type and protocol) in
// the network namespace of the socket sock: crsub's own socket that
// reaches what sock reaches (its abstract unix names, its addresses).
func SocketBeside(sock, domain, typ, protocol int) (*FD, error) {
	nsfd, err := SocketNetNS(sock)
	if err != nil {
		return nil, err
	}
	defer nsfd.Close()
	open := func() (int, error) {
		fd, err := retry(func() (int, error) { return unix.Socket(domain, typ|unix.SOCK_CLOEXEC, protocol) })
		if err != nil {
			return -1, os.NewSyscallError("socket", err)
		}
		return fd, nil
	}
	create := func() (int, error) { return InNetNS(nsfd.Int(), open) }
	if ours, err := isCallersNetNS(nsfd.Int()); err == nil && ours {
		create = open
	}
	fd, err := create()
	if err != nil {
		return nil, err
	}
	return NewFD(fd), nil
}

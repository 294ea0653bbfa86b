package substitute

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Namespace is an existing namespace a restart puts the restored tree in
// instead of making the image's namespace of that kind again: a namespace
// file (/proc/PID/ns/net, /run/netns/NAME, a bind mount of one) or the
// namespace of a running process.
type Namespace struct {
	// Path is the namespace file.
	Path string
}

// ParseNamespace reads a namespace spec for a kind ("net", "uts"…):
// "pid:N", the namespace of that kind process N is in, or the path of a
// namespace file.
func ParseNamespace(kind, spec string) (Namespace, error) {
	if rest, ok := strings.CutPrefix(spec, "pid:"); ok {
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			return Namespace{}, fmt.Errorf("%s namespace %q: pid:N wants a pid", kind, spec)
		}
		return Namespace{Path: fmt.Sprintf("/proc/%d/ns/%s", pid, kind)}, nil
	}
	if spec == "" {
		return Namespace{}, fmt.Errorf("%s namespace: empty spec", kind)
	}
	return Namespace{Path: spec}, nil
}

// Open opens the namespace and checks that it is one of type nstype (its
// CLONE_NEW* flag).
func (n Namespace) Open(nstype int) (*os.File, error) {
	f, err := os.Open(n.Path)
	if err != nil {
		return nil, err
	}
	got, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is not a namespace: %w", n.Path, os.NewSyscallError("ioctl(NS_GET_NSTYPE)", err))
	}
	if got != nstype {
		f.Close()
		return nil, fmt.Errorf("%s is a %s namespace, not a %s one", n.Path, nsTypeName(got), nsTypeName(nstype))
	}
	return f, nil
}

func nsTypeName(nstype int) string {
	names := map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWPID: "pid",
		unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWUSER: "user", unix.CLONE_NEWCGROUP: "cgroup", unix.CLONE_NEWTIME: "time"}
	if n, ok := names[nstype]; ok {
		return n
	}
	return fmt.Sprintf("type %#x", nstype)
}

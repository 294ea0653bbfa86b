package restart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/sys"
)

// A task in a user namespace of the image cannot take crsub's fds with
// pidfd_getfd (it needs ptrace rights over crsub, which nothing in a user
// namespace below crsub's has), so crsub hands them over instead: the task
// makes a socket pair, crsub takes one end of it (pidfd_getfd on the task,
// which crsub may) and sends the fd through it (SCM_RIGHTS), which the task
// receives on the other end. The pair lives for the one fd.

// msghdr, iovec, one byte and the control buffer for one fd, in the task's
// scratch memory.
const (
	passMsghdr  = 0
	passIovec   = 56
	passByte    = 72
	passControl = 80
	passEnd     = passControl + 24 // CMSG_SPACE(sizeof(int))
)

// passLocal gives task t a copy of crsub's fd local (close-on-exec, as
// pidfd_getfd would) and returns its number in the task.
func (t *task) passLocal(local int) (int, error) {
	if t.pidfd == nil {
		return -1, errors.New("crsub has no pidfd of the task")
	}
	addr, err := t.Scratch(make([]byte, passEnd))
	if err != nil {
		return -1, err
	}
	if _, err := t.Syscall(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, addr); err != nil {
		return -1, fmt.Errorf("socketpair: %w", err)
	}
	b, err := t.ReadScratch(8)
	if err != nil {
		return -1, err
	}
	ours, theirs := binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:])
	closeIn := func(fd uint32) error {
		_, err := t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return err
	}
	end, err := sys.PidfdGetfd(t.pidfd, int(ours))
	err = errors.Join(err, closeIn(ours))
	if err != nil {
		end.Close()
		return -1, errors.Join(err, closeIn(theirs))
	}
	defer end.Close()
	if err := unix.Sendmsg(end.Int(), []byte{0}, unix.UnixRights(local), nil, 0); err != nil {
		return -1, errors.Join(os.NewSyscallError("sendmsg", err), closeIn(theirs))
	}
	msg := make([]byte, passEnd)
	le := binary.LittleEndian
	le.PutUint64(msg[passMsghdr+16:], addr+passIovec)      // msg_iov
	le.PutUint64(msg[passMsghdr+24:], 1)                   // msg_iovlen
	le.PutUint64(msg[passMsghdr+32:], addr+passControl)    // msg_control
	le.PutUint64(msg[passMsghdr+40:], passEnd-passControl) // msg_controllen
	le.PutUint64(msg[passIovec:], addr+passByte)
	le.PutUint64(msg[passIovec+8:], 1)
	if _, err := t.Scratch(msg); err != nil {
		return -1, errors.Join(err, closeIn(theirs))
	}
	_, err = t.Syscall(unix.SYS_RECVMSG, uint64(theirs), addr, unix.MSG_CMSG_CLOEXEC)
	if err = errors.Join(err, closeIn(theirs)); err != nil {
		return -1, fmt.Errorf("recvmsg: %w", err)
	}
	got, err := t.ReadScratch(passEnd)
	if err != nil {
		return -1, err
	}
	// struct cmsghdr: len (8), level (4), type (4), then the fd.
	c := got[passControl:]
	if le.Uint64(got[passMsghdr+40:]) < 20 || le.Uint32(c[8:]) != unix.SOL_SOCKET || le.Uint32(c[12:]) != unix.SCM_RIGHTS {
		return -1, errors.New("recvmsg: no fd came")
	}
	return int(int32(le.Uint32(c[16:]))), nil
}

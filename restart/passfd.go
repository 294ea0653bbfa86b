package restart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// A task in a user namespace of the image cannot take crsub's fds with
// pidfd_getfd (it needs ptrace rights over crsub, which nothing in a user
// namespace below crsub's has), so crsub hands them over instead: the task
// makes a socket pair, crsub takes one end of it (pidfd_getfd on the task,
// which crsub may) and sends the fd through it (SCM_RIGHTS), which the task
// receives on the other end. The pair lives for the one fd.

// injection is what handing over needs of a task: system calls in it and
// scratch memory at addr.
type injection struct {
	call        syscaller
	addr        uint64
	write, read func(addr uint64, b []byte) error
}

// injecting runs fn with system calls in task t: in its prepared address
// space, or, before it is, in a page of its own that is taken away after.
func (t *task) injecting(fn func(in injection) error) error {
	if t.remote != nil {
		return fn(injection{call: t.Syscall, addr: t.scratch, write: t.remote.WriteMem, read: t.remote.ReadMem})
	}
	r, err := remote.New(t.tracee)
	if err != nil {
		return err
	}
	_, err = r.MapPage(0)
	if err == nil {
		err = fn(injection{call: r.Syscall, addr: r.ScratchAddr(), write: r.WriteMem, read: r.ReadMem})
	}
	if rerr := r.Restore(); err == nil {
		err = rerr
	}
	return err
}

// passLocal gives task t a copy of crsub's fd local (close-on-exec, as
// pidfd_getfd would) and returns its number in the task.
func (t *task) passLocal(local int) (int, error) {
	var fd int
	err := t.injecting(func(in injection) error {
		var err error
		fd, err = t.pass(in, local)
		return err
	})
	return fd, err
}

// msghdr, iovec, one byte and the control buffer for one fd, in the task's
// scratch memory.
const (
	passMsghdr  = 0
	passIovec   = 56
	passByte    = 72
	passControl = 80
	passEnd     = passControl + 24 // CMSG_SPACE(sizeof(int))
)

// pass hands crsub's fd local over to task t through in.
func (t *task) pass(in injection, local int) (int, error) {
	if t.pidfd == nil {
		return -1, errors.New("crsub has no pidfd of the task")
	}
	if _, err := in.call(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, in.addr); err != nil {
		return -1, fmt.Errorf("socketpair: %w", err)
	}
	b := make([]byte, 8)
	if err := in.read(in.addr, b); err != nil {
		return -1, err
	}
	ours, theirs := binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:])
	closeIn := func(fd uint32) error {
		_, err := in.call(unix.SYS_CLOSE, uint64(fd))
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
	le.PutUint64(msg[passMsghdr+16:], in.addr+passIovec)   // msg_iov
	le.PutUint64(msg[passMsghdr+24:], 1)                   // msg_iovlen
	le.PutUint64(msg[passMsghdr+32:], in.addr+passControl) // msg_control
	le.PutUint64(msg[passMsghdr+40:], passEnd-passControl) // msg_controllen
	le.PutUint64(msg[passIovec:], in.addr+passByte)
	le.PutUint64(msg[passIovec+8:], 1)
	if err := in.write(in.addr, msg); err != nil {
		return -1, errors.Join(err, closeIn(theirs))
	}
	_, err = in.call(unix.SYS_RECVMSG, uint64(theirs), in.addr, unix.MSG_CMSG_CLOEXEC)
	if err = errors.Join(err, closeIn(theirs)); err != nil {
		return -1, fmt.Errorf("recvmsg: %w", err)
	}
	got := make([]byte, passEnd)
	if err := in.read(in.addr, got); err != nil {
		return -1, err
	}
	// struct cmsghdr: len (8), level (4), type (4), then the fd.
	c := got[passControl:]
	if le.Uint64(got[passMsghdr+40:]) < 20 || le.Uint32(c[8:]) != unix.SOL_SOCKET || le.Uint32(c[12:]) != unix.SCM_RIGHTS {
		return -1, errors.New("recvmsg: no fd came")
	}
	return int(int32(le.Uint32(c[16:]))), nil
}

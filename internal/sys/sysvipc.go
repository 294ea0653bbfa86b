package sys

import (
	"bytes"
	"encoding/binary"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// System V semaphore and message queue calls, which x/sys/unix lacks. Each
// acts in the IPC namespace of the calling thread.

// MsgCopy is MSG_COPY: msgrcv copies the message at an index, leaving it
// queued.
const MsgCopy = 0o40000

// Semctl commands x/sys/unix lacks.
const (
	semGetAll = 13 // GETALL
	semSetAll = 17 // SETALL
)

// ipcPerm is the part of struct ipc64_perm IPC_SET changes: uid, gid and
// mode, at offsets 4, 8 and 20 of every *id64_ds structure.
const (
	ipcPermUID  = 4
	ipcPermGID  = 8
	ipcPermMode = 20
	// msqid64_ds.msg_qbytes, after the 48-byte ipc64_perm, three times and
	// msg_cbytes and msg_qnum.
	msgQbytes = 88
	// idDsSize is more than any *id64_ds structure (semid64_ds 104,
	// msqid64_ds 120 bytes on x86_64).
	idDsSize = 256
)

// Semget is semget(2).
func Semget(key, nsems, flags int) (int, error) {
	if err := fault.Call("semget"); err != nil {
		return -1, os.NewSyscallError("semget", err)
	}
	id, err := retry(func() (int, error) {
		r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
		return int(r), errnoErr(e)
	})
	return id, os.NewSyscallError("semget", err)
}

// SemGetAll reads the values of set id's n semaphores (semctl GETALL).
func SemGetAll(id, n int) ([]uint16, error) {
	vals := make([]uint16, max(n, 1))
	err := retryErr(func() error {
		_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, semGetAll, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
		return errnoErr(e)
	})
	return vals[:n], os.NewSyscallError("semctl(GETALL)", err)
}

// SemSetAll sets the values of set id's semaphores (semctl SETALL).
func SemSetAll(id int, vals []uint16) error {
	if err := fault.Call("semctl(SETALL)"); err != nil {
		return os.NewSyscallError("semctl(SETALL)", err)
	}
	if len(vals) == 0 {
		return nil
	}
	err := retryErr(func() error {
		_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, semSetAll, uintptr(unsafe.Pointer(&vals[0])), 0, 0)
		return errnoErr(e)
	})
	return os.NewSyscallError("semctl(SETALL)", err)
}

// SemSetPerm sets the owner and permission bits of semaphore set id.
func SemSetPerm(id int, uid, gid, mode uint32) error {
	return os.NewSyscallError("semctl(IPC_SET)", setPerm(unix.SYS_SEMCTL, id, uid, gid, mode, 0))
}

// Msgget is msgget(2).
func Msgget(key, flags int) (int, error) {
	if err := fault.Call("msgget"); err != nil {
		return -1, os.NewSyscallError("msgget", err)
	}
	id, err := retry(func() (int, error) {
		r, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flags), 0)
		return int(r), errnoErr(e)
	})
	return id, os.NewSyscallError("msgget", err)
}

// MsgSetPerm sets the owner, permission bits and byte limit (qbytes, if
// not 0) of message queue id.
func MsgSetPerm(id int, uid, gid, mode uint32, qbytes uint64) error {
	return os.NewSyscallError("msgctl(IPC_SET)", setPerm(unix.SYS_MSGCTL, id, uid, gid, mode, qbytes))
}

// setPerm is IPC_STAT then IPC_SET through semctl or msgctl (nr). Both
// take their buffer as the last argument: semctl's fourth, msgctl's third.
func setPerm(nr uintptr, id int, uid, gid, mode uint32, qbytes uint64) error {
	buf := make([]byte, idDsSize)
	call := func(cmd int) error {
		p := uintptr(unsafe.Pointer(&buf[0]))
		return retryErr(func() error {
			var e unix.Errno
			if nr == unix.SYS_SEMCTL {
				_, _, e = unix.Syscall6(nr, uintptr(id), 0, uintptr(cmd), p, 0, 0)
			} else {
				_, _, e = unix.Syscall(nr, uintptr(id), uintptr(cmd), p)
			}
			return errnoErr(e)
		})
	}
	if err := call(unix.IPC_STAT); err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint32(buf[ipcPermUID:], uid)
	le.PutUint32(buf[ipcPermGID:], gid)
	le.PutUint32(buf[ipcPermMode:], mode)
	if qbytes != 0 {
		le.PutUint64(buf[msgQbytes:], qbytes)
	}
	return call(unix.IPC_SET)
}

// MsgQbytes reads the byte limit of message queue id.
func MsgQbytes(id int) (uint64, error) {
	buf := make([]byte, idDsSize)
	err := retryErr(func() error {
		_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_STAT, uintptr(unsafe.Pointer(&buf[0])))
		return errnoErr(e)
	})
	if err != nil {
		return 0, os.NewSyscallError("msgctl(IPC_STAT)", err)
	}
	return binary.LittleEndian.Uint64(buf[msgQbytes:]), nil
}

// Msgsnd sends a message of type mtype without waiting.
func Msgsnd(id int, mtype int64, text []byte) error {
	if err := fault.Call("msgsnd"); err != nil {
		return os.NewSyscallError("msgsnd", err)
	}
	buf := make([]byte, 8+len(text))
	binary.LittleEndian.PutUint64(buf, uint64(mtype))
	copy(buf[8:], text)
	err := retryErr(func() error {
		_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(text)), unix.IPC_NOWAIT, 0, 0)
		return errnoErr(e)
	})
	return os.NewSyscallError("msgsnd", err)
}

// MsgCopyAt copies, without taking it, message index of queue id (at most
// maxSize bytes of text), returning its type and text.
func MsgCopyAt(id, index, maxSize int) (int64, []byte, error) {
	buf := make([]byte, 8+maxSize)
	n, err := retry(func() (int, error) {
		r, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(maxSize), uintptr(index), unix.IPC_NOWAIT|MsgCopy, 0)
		return int(r), errnoErr(e)
	})
	if err != nil {
		return 0, nil, os.NewSyscallError("msgrcv(MSG_COPY)", err)
	}
	return int64(binary.LittleEndian.Uint64(buf)), buf[8 : 8+n], nil
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// WithNextID runs make with the calling thread's IPC namespace's next id
// for one kind of System V object (/proc/sys/kernel/NAME_next_id: msg, sem
// or shm) set to id, so that the object it makes gets that id, and puts
// the next id back as it was afterwards (a restart sets the image's own
// before making its objects). It returns the id make returned.
func WithNextID(name string, id int, make func() (int, error)) (int, error) {
	path := "/proc/sys/kernel/" + name
	was, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(id)), 0); err != nil {
		return -1, err
	}
	got, err := make()
	_ = os.WriteFile(path, bytes.TrimSpace(was), 0)
	return got, err
}

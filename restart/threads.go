package restart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
)

// thread is a thread other than the main one of a task being rebuilt.
type thread struct {
	image  *ckpt.Thread
	tracee *ptrace.Tracee
	remote *remote.Remote
}

// addThread takes a thread record: the main thread's, or another's, to be
// created once the address space is complete.
func (t *task) addThread(th *ckpt.Thread) error {
	if th.Tid == t.pid {
		if t.thread != nil {
			return fmt.Errorf("thread %d appears twice", th.Tid)
		}
		t.thread = th
		return nil
	}
	for _, x := range t.threads {
		if x.image.Tid == th.Tid {
			return fmt.Errorf("thread %d appears twice", th.Tid)
		}
	}
	t.threads = append(t.threads, &thread{image: th})
	sort.Slice(t.threads, func(i, j int) bool { return t.threads[i].image.Tid < t.threads[j].image.Tid })
	return nil
}

const (
	cloneThreadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	cloneArgsSize = 88 // struct clone_args up to set_tid_size and cgroup
	// spinOffset is where, in the code page, new threads wait to be
	// seized: right after the syscall instruction they return from.
	spinOffset = 2
)

// createThreads creates the task's other threads with their tids: clone3
// with set_tid run in the main thread. A new thread returns from clone3
// into the code page, where it spins on a jump to itself until it is
// seized; it never runs code of the restored program before release.
func (t *task) createThreads() error {
	if len(t.threads) == 0 {
		return nil
	}
	if err := t.remote.WriteMem(t.codePage+spinOffset, []byte{0xeb, 0xfe}); err != nil { // jmp .
		return err
	}
	for _, x := range t.threads {
		tid := x.image.Tid
		args := make([]byte, cloneArgsSize)
		le := binary.LittleEndian
		le.PutUint64(args[0:], cloneThreadFlags)
		// A small stack in the scratch buffer: the thread only spins.
		le.PutUint64(args[40:], t.scratch+4096)
		le.PutUint64(args[48:], 4096)
		le.PutUint64(args[64:], t.scratch+cloneArgsSize) // set_tid
		le.PutUint64(args[72:], 1)                       // set_tid_size
		tidBytes := make([]byte, 4)
		inner := t.s.innerTid(t.pid, tid)
		le.PutUint32(tidBytes, uint32(inner))
		if err := t.remote.WriteMem(t.scratch, append(args, tidBytes...)); err != nil {
			return err
		}
		got, err := t.Syscall(unix.SYS_CLONE3, t.scratch, cloneArgsSize)
		if err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("thread %d: its tid is in use", tid)
			}
			return fmt.Errorf("thread %d: clone3: %w", tid, err)
		}
		if int(got) != inner {
			return fmt.Errorf("thread %d: clone3 gave tid %d, want %d", tid, got, inner)
		}
		host := inner
		if t.s.inPidNamespace(t.pid) {
			if host, err = hostTid(t.host, inner); err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
		}
		if x.tracee, err = ptrace.Seize(host, ptrace.SuspendSeccomp); err != nil {
			return fmt.Errorf("thread %d: taking it over: %w", tid, err)
		}
		if x.remote, err = remote.New(x.tracee); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// hostTid finds the thread of process host whose id in its namespace is
// inner.
func hostTid(host, inner int) (int, error) {
	tids, err := procfs.Tids(host)
	if err != nil {
		return 0, err
	}
	for _, tid := range tids {
		if st, err := procfs.ReadTaskStatus(host, tid); err == nil && len(st.NSpid) > 0 && st.NSpid[len(st.NSpid)-1] == inner {
			return tid, nil
		}
	}
	return 0, fmt.Errorf("process %d has no thread %d in its namespace", host, inner)
}

// joinThreadCgroups moves each thread whose cgroups were not its process's
// back into them; a new thread starts in those of the thread that made it.
func (t *task) joinThreadCgroups() error {
	for _, x := range t.threads {
		if err := t.s.moveToCgroups(t.host, x.tracee.Tid, x.image.Cgroups, true); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	return nil
}

// moveToCgroups moves thread tid of process pid (the whole process unless
// thread) into the cgroups of want it is not in.
func (s *restorer) moveToCgroups(pid, tid int, want []ckpt.Cgroup, thread bool) error {
	if len(want) == 0 {
		return nil
	}
	cur, err := procfs.ReadCgroups(pid, tid)
	if err != nil {
		return err
	}
	in := map[string]string{}
	for _, c := range cur {
		in[c.Controllers] = c.Path
	}
	for _, c := range want {
		if path, ok := in[c.Controllers]; ok && path == c.Path {
			continue
		}
		if err := s.cgroups.Move(c.Controllers, c.Path, tid, thread); err != nil {
			return err
		}
	}
	return nil
}

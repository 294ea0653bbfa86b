package restart

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// finish restores everything but registers: memory protections and mm
// fields, leftover fds, process state, signals and thread state.
func (t *task) finish(fc *files.RestoreContext) error {
	if t.process == nil || t.thread == nil || t.signals == nil || t.mm == nil {
		return errors.New("the image lacks a process, thread, signals or mm record for it")
	}
	if n := len(t.thread.Regs); n != int(unsafe.Sizeof(ptrace.Regs{})/8) {
		return fmt.Errorf("thread %d: %d register words, want %d", t.thread.Tid, n, unsafe.Sizeof(ptrace.Regs{})/8)
	}
	if err := t.finishMemory(); err != nil {
		return err
	}
	// The files opened late may be handed over by crsub's pidfd, held
	// until now; the locks come after them, as closing any fd on a file
	// drops the process's POSIX locks on it.
	if err := t.openLater(fc); err != nil {
		return err
	}
	if err := t.settleFiles(fc); err != nil {
		return err
	}
	for held := range t.held {
		if *held >= 0 {
			if _, err := t.Syscall(unix.SYS_CLOSE, uint64(*held)); err != nil {
				return err
			}
		}
		delete(t.held, held)
	}
	if err := t.restoreLocks(); err != nil {
		return err
	}
	if err := t.restoreProcess(fc); err != nil {
		return err
	}
	if err := t.restoreSignals(); err != nil {
		return err
	}
	// The audit login uid needs CAP_AUDIT_CONTROL, and the credentials
	// may drop it: first, before any thread is made, so that every
	// thread inherits it.
	if err := t.restoreLoginUID(); err != nil {
		return err
	}
	// Seccomp filters next: the tasks are traced with seccomp suspended,
	// so the system calls still to run in them are not filtered. The
	// threads whose filters are not the main thread's are made on the way
	// (seccomp.go).
	if err := t.installSeccomp(); err != nil {
		return err
	}
	// The other threads next, before the credentials: making a thread with
	// its id (clone3's set_tid) needs CAP_CHECKPOINT_RESTORE, which the
	// image's credentials seldom have. They are per thread: each thread
	// gets its own.
	if err := t.createThreads(t.threads); err != nil {
		return err
	}
	// The credentials go after the seccomp filters: installing one needs
	// CAP_SYS_ADMIN without no_new_privs.
	if err := t.restoreCreds(t.host, t.Syscall, t.process.Creds); err != nil {
		return err
	}
	for _, x := range t.threads {
		c := t.process.Creds
		if x.image.Creds != nil {
			c = *x.image.Creds
		}
		if err := t.restoreCreds(x.tracee.Tid, x.remote.Syscall, c); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	// After the credentials, whose change of ids made it what
	// fs.suid_dumpable says (2 cannot be set, and is left so).
	if d := t.process.Dumpable; d != nil && *d != 2 {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uint64(*d), 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_DUMPABLE, %d): %w", *d, err)
		}
	}
	if err := t.joinThreadCgroups(); err != nil {
		return err
	}
	// After the threads: a timer may signal one of them.
	if err := t.restorePosixTimers(); err != nil {
		return err
	}
	if err := t.restoreThread(t.remote, t.thread); err != nil {
		return err
	}
	for _, x := range t.threads {
		if err := t.restoreThread(x.remote, x.image); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	// Strict seccomp mode last, in each thread that had it (it is the
	// calling thread's alone, and threads created after it would inherit
	// it). What crsub still runs in the task (here and at release) is let
	// through: the tasks are traced with seccomp suspended, and the mode
	// takes effect when they are released.
	if err := setSeccompStrict(t.remote, t.thread); err != nil {
		return err
	}
	for _, x := range t.threads {
		if err := setSeccompStrict(x.remote, x.image); err != nil {
			return fmt.Errorf("thread %d: %w", x.image.Tid, err)
		}
	}
	t.restoreSched(t.host, t.thread)
	for _, x := range t.threads {
		t.restoreSched(x.tracee.Tid, x.image)
	}
	if adj := t.process.OOMScoreAdj; adj != 0 {
		// Lowering it below the stub's needs CAP_SYS_RESOURCE.
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", t.host), []byte(strconv.Itoa(adj)), 0); err != nil {
			t.Warn("cannot restore oom_score_adj", "value", adj, "err", err)
		}
	}
	if _, err := t.Syscall(unix.SYS_MUNMAP, t.scratch, t.scratchSize); err != nil {
		return fmt.Errorf("unmapping the scratch buffer: %w", err)
	}
	return nil
}

func (t *task) restoreProcess(fc *files.RestoreContext) error {
	p := t.process
	if _, err := t.Syscall(unix.SYS_UMASK, uint64(p.Umask)); err != nil {
		return fmt.Errorf("umask: %w", err)
	}
	cwd := p.Cwd
	switch {
	case p.CwdDeleted:
		var err error
		if cwd, err = fc.RemovedDir(t, p.Cwd, p.CwdDev, p.CwdInode, p.CwdMode, int(p.CwdUID), int(p.CwdGID)); err != nil {
			return err
		}
	case p.CwdDeadPid > 0:
		// The stand-in is reaped before the tasks run: the directory
		// is a dead process's again. On a proc the task's mount
		// namespace made anew, the pid is one of the pid namespace
		// that proc shows.
		var pidns *os.File
		if p.CwdDev != 0 {
			pidns, _ = t.procPidNamespace(p.CwdDev)
		}
		_, pid, err := fc.StandIn(p.CwdDeadPid, pidns)
		if err != nil {
			return fmt.Errorf("working directory %s: %w", p.Cwd, err)
		}
		rest, ok := strings.CutPrefix(p.Cwd, "/proc/"+strconv.Itoa(p.CwdDeadPid))
		if !ok || (rest != "" && rest[0] != '/') {
			return fmt.Errorf("working directory %s is not under /proc/%d", p.Cwd, p.CwdDeadPid)
		}
		if pid != p.CwdDeadPid {
			t.Warn("working directory in /proc of a process that had exited: its pid is taken, another stands for it", "pid", p.CwdDeadPid, "instead", pid)
		}
		cwd = "/proc/" + strconv.Itoa(pid) + rest
	}
	addr, err := t.putString(0, cwd)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_CHDIR, addr); err != nil {
		return fmt.Errorf("chdir %s: %w", p.Cwd, err)
	}
	// The image names files and the working directory as crsub sees them,
	// from its own root: the task takes its root directory once it has
	// opened them all (the working directory stays where chdir put it,
	// inside the new root, as chroot(2) leaves it).
	if p.Root != "" && p.Root != "/" {
		if addr, err = t.putString(0, p.Root); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_CHROOT, addr); err != nil {
			return fmt.Errorf("chroot %s: %w", p.Root, err)
		}
	}
	if _, err := t.Syscall(unix.SYS_PERSONALITY, uint64(p.Personality)); err != nil {
		return fmt.Errorf("personality %#x: %w", p.Personality, err)
	}
	comm := p.Comm
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if addr, err = t.putString(0, comm); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, addr); err != nil {
		return fmt.Errorf("comm: %w", err)
	}
	for _, r := range p.Rlimits {
		lim := unix.Rlimit{Cur: r.Cur, Max: r.Max}
		if err := unix.Prlimit(t.host, r.Resource, &lim, nil); err != nil {
			t.Warn("cannot restore a resource limit", "resource", r.Resource, "cur", r.Cur, "max", r.Max, "err", err)
		}
	}
	for which, it := range p.Itimers {
		if it.ValueUsec == 0 && it.IntervalUsec == 0 {
			continue // disarmed
		}
		if it.ValueUsec == 0 && t.sharedPending([...]int{int(unix.SIGALRM), int(unix.SIGVTALRM), int(unix.SIGPROF)}[which]) {
			// Expired with its signal still pending: the kernel re-arms a
			// periodic timer only when that signal is taken. The signal
			// comes back pending, the next one an interval later. (Without
			// it pending, value 0 is a disarmed timer whose interval is
			// kept, as setitimer does.)
			it.ValueUsec = it.IntervalUsec
		}
		b := make([]byte, 32)
		putLE64(b[0:], uint64(it.IntervalUsec/1e6))
		putLE64(b[8:], uint64(it.IntervalUsec%1e6))
		value := it.ValueUsec
		putLE64(b[16:], uint64(value/1e6))
		putLE64(b[24:], uint64(value%1e6))
		if err := t.remote.WriteMem(t.scratch, b); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SETITIMER, uint64(which), t.scratch, 0); err != nil {
			return fmt.Errorf("setitimer %d: %w", which, err)
		}
	}
	if p.NoNewPrivs {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if p.ChildSubreaper {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("child subreaper: %w", err)
		}
	}
	return nil
}

// restoreSched gives thread host (as crsub sees it) its scheduling back. A
// setting refused here (a CPU missing, a deadline not admitted) is a
// warning: the program runs, scheduled otherwise.
func (t *task) restoreSched(host int, th *ckpt.Thread) {
	sc := th.Sched
	if sc == nil {
		return
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: sc.Policy, Flags: sc.Flags, Nice: sc.Nice, Priority: sc.Priority,
		Runtime: sc.Runtime, Deadline: sc.Deadline, Period: sc.Period}
	if err := unix.SchedSetAttr(host, &attr, 0); err != nil {
		t.Warn("cannot restore a thread's scheduling", "tid", th.Tid, "policy", sc.Policy, "nice", sc.Nice, "err", err)
	}
	if len(sc.Affinity) > 0 {
		var set unix.CPUSet
		for i, w := range sc.Affinity {
			for b := 0; b < 64; b++ {
				if w&(1<<b) != 0 {
					set.Set(i*64 + b)
				}
			}
		}
		if err := unix.SchedSetaffinity(host, &set); err != nil {
			t.Warn("cannot restore a thread's CPU affinity", "tid", th.Tid, "err", err)
		}
	}
	if err := sys.IoprioSet(host, sc.IOPrio); err != nil {
		t.Warn("cannot restore a thread's I/O priority", "tid", th.Tid, "ioprio", sc.IOPrio, "err", err)
	}
}

// prTimerCreateRestoreIDs (Linux 6.15) makes timer_create take the id it
// is given, so timers come back with the ids the process knows them by.
const prTimerCreateRestoreIDs = 77

// restorePosixTimers creates the process's timer_create timers again, with
// their ids, notification and remaining time.
func (t *task) restorePosixTimers() error {
	timers := t.process.PosixTimers
	if len(timers) == 0 {
		return nil
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, prTimerCreateRestoreIDs, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("POSIX timers: prctl(PR_TIMER_CREATE_RESTORE_IDS) (Linux 6.15 or newer): %w", err)
	}
	for _, pt := range timers {
		// struct sigevent: sigev_value, sigev_signo, sigev_notify, then
		// the tid for SIGEV_THREAD_ID; 64 bytes. The id follows it.
		b := make([]byte, 72)
		putLE64(b[0:], pt.Value)
		putLE32(b[8:], uint32(pt.Signal))
		putLE32(b[12:], uint32(pt.Notify))
		if pt.Tid != 0 {
			putLE32(b[16:], uint32(t.s.innerTid(t.pid, pt.Tid)))
		}
		putLE32(b[64:], uint32(pt.ID))
		if err := t.remote.WriteMem(t.scratch, b); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_TIMER_CREATE, uint64(uint32(int32(pt.ClockID))), t.scratch, t.scratch+64); err != nil {
			return fmt.Errorf("POSIX timer %d: timer_create: %w", pt.ID, err)
		}
		id := make([]byte, 4)
		if err := t.remote.ReadMem(t.scratch+64, id); err != nil {
			return err
		}
		if got := int(int32(binary.LittleEndian.Uint32(id))); got != pt.ID {
			return fmt.Errorf("POSIX timer %d: created as %d", pt.ID, got)
		}
		if pt.ValueNsec == 0 && pt.IntervalNsec == 0 {
			continue // disarmed
		}
		if pt.ValueNsec == 0 && t.sharedPending(pt.Signal) {
			pt.ValueNsec = pt.IntervalNsec // expired, its signal pending: as for itimers
		}
		its := make([]byte, 32)
		putLE64(its[0:], uint64(pt.IntervalNsec/1e9))
		putLE64(its[8:], uint64(pt.IntervalNsec%1e9))
		putLE64(its[16:], uint64(pt.ValueNsec/1e9))
		putLE64(its[24:], uint64(pt.ValueNsec%1e9))
		if err := t.remote.WriteMem(t.scratch, its); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_TIMER_SETTIME, uint64(pt.ID), 0, t.scratch, 0); err != nil {
			return fmt.Errorf("POSIX timer %d: timer_settime: %w", pt.ID, err)
		}
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, prTimerCreateRestoreIDs, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("POSIX timers: %w", err)
	}
	return nil
}

// sharedPending says whether signal sig was pending for the whole process.
func (t *task) sharedPending(sig int) bool {
	if t.signals == nil {
		return false
	}
	for _, si := range t.signals.SharedPending {
		if si.Signo == sig {
			return true
		}
	}
	return false
}

// restoreLoginUID writes the audit login uid back: the kernel takes it only
// from the process itself, through /proc/self/loginuid.
// unsetLoginUID is the audit login uid of a task no login set one for.
const unsetLoginUID = 1<<32 - 1

func (t *task) restoreLoginUID() error {
	want := t.process.LoginUID
	if want == nil {
		return nil
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/loginuid", t.host)); err == nil && strings.TrimSpace(string(b)) == strconv.FormatUint(uint64(*want), 10) {
		return nil // inherited from crsub as it was
	}
	// The task writes it in its user namespace, where the uid has the
	// number the namespace's map gives it (the image has crsub's).
	value := *want
	if u := t.s.userMaps(t.process); u != nil && value != unsetLoginUID {
		in, ok := ckpt.ToInside(u.UidMap, value)
		if !ok {
			t.Warn("the audit login uid is not mapped in the process's user namespace; it keeps the one it inherits", "loginuid", value)
			return nil
		}
		value = in
	}
	text := strconv.FormatUint(uint64(value), 10)
	fd, err := t.Open("/proc/self/loginuid", unix.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("loginuid: %w", err)
	}
	defer func() { _, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd)) }()
	addr, err := t.Scratch([]byte(text))
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_WRITE, uint64(fd), addr, uint64(len(text))); err != nil {
		return fmt.Errorf("loginuid %d: %w", *want, err)
	}
	return nil
}

// restoreCreds gives thread tid user and group ids and capabilities c
// (permitted, effective, inheritable, bounding, ambient), in the order the
// kernel allows from the root task it starts as: ids with the permitted set
// kept (PR_SET_KEEPCAPS), the inheritable set while it may still grow, the
// ambient set (a subset of permitted and inheritable), the bounding set
// (dropping needs CAP_SETPCAP), and last the permitted and effective sets.
func (t *task) restoreCreds(tid int, call func(nr int, args ...uint64) (uint64, error), c ckpt.Creds) error {
	cur, err := procfs.ReadTaskStatus(t.host, tid)
	if err != nil {
		return err
	}
	if c.Uid == cur.Uid && c.Gid == cur.Gid && slices.Equal(c.Groups, cur.Groups) &&
		c.CapInh == cur.CapInh && c.CapPrm == cur.CapPrm && c.CapEff == cur.CapEff && c.CapBnd == cur.CapBnd && c.CapAmb == cur.CapAmb {
		return nil // as the restart runs
	}
	keepGroups := false
	if u := t.s.userMaps(t.process); u != nil {
		if c, keepGroups, err = credsInside(c, cur.Groups, u); err != nil {
			return err
		}
	}
	steps := credSteps(c, cur.CapPrm, cur.CapInh, cur.CapBnd)
	for _, st := range steps {
		switch {
		case st.groups != nil && keepGroups:
		case st.groups != nil:
			groups := make([]byte, 4*len(st.groups))
			for i, g := range st.groups {
				putLE32(groups[4*i:], g)
			}
			addr := t.scratch
			if len(groups) > 0 {
				if addr, err = t.Scratch(groups); err != nil {
					return err
				}
			}
			if _, err := call(unix.SYS_SETGROUPS, uint64(len(st.groups)), addr); err != nil {
				return fmt.Errorf("setgroups: %w", err)
			}
		case st.capset != nil:
			// struct __user_cap_header_struct (version 3, pid 0), then two
			// struct __user_cap_data_struct: effective, permitted,
			// inheritable, low words then high.
			b := make([]byte, 8+24)
			putLE32(b[0:], linuxCapabilityVersion3)
			sets := *st.capset
			for i := range 2 {
				putLE32(b[8+12*i:], uint32(sets[0]>>(32*i)))
				putLE32(b[12+12*i:], uint32(sets[1]>>(32*i)))
				putLE32(b[16+12*i:], uint32(sets[2]>>(32*i)))
			}
			addr, err := t.Scratch(b)
			if err != nil {
				return err
			}
			if _, err := call(unix.SYS_CAPSET, addr, addr+8); err != nil {
				return fmt.Errorf("capset (effective %#x, permitted %#x, inheritable %#x): %w", sets[0], sets[1], sets[2], err)
			}
		default:
			if _, err := call(st.nr, st.args...); err != nil {
				return fmt.Errorf("%s: %w", st.what, err)
			}
		}
	}
	return nil
}

// credsInside are creds c, as crsub's user namespace sees them, as the
// process's own user namespace u maps them: what it sets its ids to from
// inside. keep says its groups are those it has now (cur, as crsub sees
// them): setgroups is left out, as it must be where u denies it.
func credsInside(c ckpt.Creds, cur []uint32, u *ckpt.UserNamespace) (in ckpt.Creds, keep bool, err error) {
	in = c
	for i := range 4 {
		var ok bool
		if in.Uid[i], ok = ckpt.ToInside(u.UidMap, c.Uid[i]); !ok {
			return c, false, fmt.Errorf("uid %d is not mapped in its user namespace", c.Uid[i])
		}
		if in.Gid[i], ok = ckpt.ToInside(u.GidMap, c.Gid[i]); !ok {
			return c, false, fmt.Errorf("gid %d is not mapped in its user namespace", c.Gid[i])
		}
	}
	if slices.Equal(c.Groups, cur) {
		return in, true, nil
	}
	if u.Setgroups == "deny" {
		return c, false, fmt.Errorf("its groups %v are not those it starts with (%v), and its user namespace denies setgroups", c.Groups, cur)
	}
	in.Groups = make([]uint32, len(c.Groups))
	for i, g := range c.Groups {
		var ok bool
		if in.Groups[i], ok = ckpt.ToInside(u.GidMap, g); !ok {
			return c, false, fmt.Errorf("group %d is not mapped in its user namespace", g)
		}
	}
	return in, false, nil
}

// linuxCapabilityVersion3 is _LINUX_CAPABILITY_VERSION_3: 64-bit sets.
const linuxCapabilityVersion3 = 0x20080522

// credStep is one call of restoreCreds: setgroups (groups set), capset
// (effective, permitted, inheritable) or a plain call.
type credStep struct {
	what   string
	nr     int
	args   []uint64
	groups []uint32
	capset *[3]uint64
}

// credSteps plans the calls that take a task with permitted set prm,
// inheritable inh and bounding set bnd (and root's ids) to creds c.
func credSteps(c ckpt.Creds, prm, inh, bnd uint64) []credStep {
	call := func(what string, nr int, args ...uint64) credStep { return credStep{what: what, nr: nr, args: args} }
	groups := c.Groups
	if groups == nil {
		groups = []uint32{}
	}
	steps := []credStep{
		call("prctl(PR_SET_KEEPCAPS)", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0, 0, 0),
		{what: "setgroups", groups: groups},
		call("setresgid", unix.SYS_SETRESGID, uint64(c.Gid[0]), uint64(c.Gid[1]), uint64(c.Gid[2])),
	}
	// The fs gid while still root (setresgid set it to the egid,
	// setresuid leaves it; a uid other than root could not set it), the
	// fs uid after setresuid, which sets it to the euid.
	if c.Gid[3] != c.Gid[1] {
		steps = append(steps, call("setfsgid", unix.SYS_SETFSGID, uint64(c.Gid[3])))
	}
	steps = append(steps, call("setresuid", unix.SYS_SETRESUID, uint64(c.Uid[0]), uint64(c.Uid[1]), uint64(c.Uid[2])))
	if c.Uid[3] != c.Uid[1] {
		steps = append(steps, call("setfsuid", unix.SYS_SETFSUID, uint64(c.Uid[3])))
	}
	// Everything permitted made effective again (a change of uid cleared
	// it), then the inheritable set the process had: with CAP_SETPCAP
	// effective it may take any capability of the bounding set.
	steps = append(steps, credStep{what: "capset", capset: &[3]uint64{prm, prm, inh}},
		credStep{what: "capset", capset: &[3]uint64{prm, prm, c.CapInh}})
	for cp := range 64 {
		if c.CapAmb&(1<<cp) != 0 {
			steps = append(steps, call(fmt.Sprintf("raising ambient capability %d", cp), unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uint64(cp), 0, 0))
		}
	}
	for cp := range 64 {
		if bnd&(1<<cp) != 0 && c.CapBnd&(1<<cp) == 0 {
			steps = append(steps, call(fmt.Sprintf("dropping capability %d from the bounding set", cp), unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uint64(cp), 0, 0, 0))
		}
	}
	return append(steps,
		credStep{what: "capset", capset: &[3]uint64{c.CapEff, c.CapPrm, c.CapInh}},
		call("prctl(PR_SET_KEEPCAPS)", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0, 0, 0))
}

func (t *task) restoreSignals() error {
	actions := map[int]ckpt.SigAction{}
	for _, a := range t.signals.Actions {
		actions[a.Signo] = a
	}
	b := make([]byte, 32)
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		// Every signal is set: the new task inherited this process's
		// handlers, which mean nothing in the restored one.
		a := actions[sig]
		putLE64(b[0:], a.Handler)
		putLE64(b[8:], a.Flags)
		putLE64(b[16:], a.Restorer)
		putLE64(b[24:], a.Mask)
		if err := t.remote.WriteMem(t.scratch, b); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_RT_SIGACTION, uint64(sig), t.scratch, 0, 8); err != nil {
			return fmt.Errorf("rt_sigaction %d: %w", sig, err)
		}
	}
	for _, si := range t.signals.SharedPending {
		if err := t.queue(unix.SYS_RT_SIGQUEUEINFO, si, uint64(t.inner()), uint64(si.Signo)); err != nil {
			return err
		}
	}
	return nil
}

// queue re-queues a pending signal from inside the task, where the kernel
// accepts any siginfo.
func (t *task) queue(nr int, si ckpt.Siginfo, args ...uint64) error {
	if len(si.Raw) != 128 {
		return fmt.Errorf("pending signal %d: siginfo of %d bytes", si.Signo, len(si.Raw))
	}
	if err := t.remote.WriteMem(t.scratch, si.Raw); err != nil {
		return err
	}
	if _, err := t.Syscall(nr, append(args, t.scratch)...); err != nil {
		return fmt.Errorf("queueing pending signal %d: %w", si.Signo, err)
	}
	return nil
}

// restoreThread restores a thread's own state by system calls run in that
// thread (r), with the task's scratch buffer, which all threads share.
func (t *task) restoreThread(r *remote.Remote, th *ckpt.Thread) error {
	call := func(nr int, args ...uint64) (uint64, error) { return r.Syscall(nr, args...) }
	b := make([]byte, 24)
	putLE64(b[0:], th.AltStack.SP)
	putLE32(b[8:], uint32(th.AltStack.Flags))
	putLE64(b[16:], th.AltStack.Size)
	if th.AltStack.Flags&ssDisable != 0 {
		putLE64(b[0:], 0)
		putLE64(b[16:], 0)
	}
	if err := t.remote.WriteMem(t.scratch, b); err != nil {
		return err
	}
	if _, err := call(unix.SYS_SIGALTSTACK, t.scratch, 0); err != nil {
		return fmt.Errorf("sigaltstack: %w", err)
	}
	if _, err := call(unix.SYS_SET_TID_ADDRESS, th.ClearChildTid); err != nil {
		return fmt.Errorf("set_tid_address: %w", err)
	}
	if th.RobustList != 0 {
		if _, err := call(unix.SYS_SET_ROBUST_LIST, th.RobustList, th.RobustLen); err != nil {
			return fmt.Errorf("set_robust_list: %w", err)
		}
	}
	if r := th.Rseq; r != nil {
		if _, err := call(unix.SYS_RSEQ, r.Addr, uint64(r.Len), 0, uint64(r.Signature)); err != nil {
			return fmt.Errorf("rseq registration at %#x: %w", r.Addr, err)
		}
	}
	// Queued from the main thread: the kernel takes an arbitrary siginfo
	// only from the thread group's leader.
	for _, si := range th.Pending {
		if err := t.queue(unix.SYS_RT_TGSIGQUEUEINFO, si, uint64(t.inner()), uint64(t.s.innerTid(t.pid, th.Tid)), uint64(si.Signo)); err != nil {
			return err
		}
	}
	// The parent-death signal, after the credentials (changing them clears
	// it), and always: until now every task had SIGKILL, to die with crsub
	// (childSpin, stub.Spawn). Not the image's for the root process: its
	// parent now is crsub, which may exit (--detach) without anything
	// having happened to the real one.
	pdeath := uint64(th.ParentDeathSignal)
	if t.pid == t.s.tree.Processes[0].Pid {
		pdeath = 0
	}
	if _, err := call(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, pdeath); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if th.Tid != t.pid && th.Comm != "" {
		addr, err := t.putString(0, th.Comm)
		if err != nil {
			return err
		}
		if _, err := call(unix.SYS_PRCTL, unix.PR_SET_NAME, addr); err != nil {
			return fmt.Errorf("thread name: %w", err)
		}
	}
	return nil
}

// restartSyscall puts a thread that was frozen inside a system call back
// in the state the kernel leaves such a thread in: the call's number in
// orig_rax and a restart code in rax, the instruction pointer past the
// syscall instruction. A signal delivered in that state ends or restarts
// the call as the kernel decides (EINTR, or a restart for SA_RESTART and
// ERESTARTSYS). PTRACE_DETACH of a stopped thread wakes it through the
// kernel's signal path, which restarts the call or ends it with EINTR
// exactly as without a checkpoint. (The kernel decides just before the
// return to user space: a signal landing in the microseconds after that
// decision runs its handler and then the call again, as after any
// restart — a strace detach — of a program's wait; a program waiting on a
// flag its handler sets races the same way, and sigsuspend is the cure.)
//
// The kernel's restart block did not survive the checkpoint, so calls that
// used it are re-issued the same way with what is left of their time,
// which the kernel wrote back to user memory when it interrupted them;
// where nothing says what is left, the call returns EINTR, as it may.
func restartSyscall(regs *ptrace.Regs, sc *ckpt.InterruptedSyscall) {
	if sc == nil {
		return
	}
	// A completed call: nothing for the kernel to restart.
	regs.Orig_rax = ^uint64(0)
	rerun := func(code int64) {
		regs.Orig_rax = uint64(sc.Nr)
		regs.Rax = uint64(-code)
	}
	eintr := func() { e := -int64(unix.EINTR); regs.Rax = uint64(e) }
	switch code := -sc.Ret; code {
	case ptrace.ErrRestartSys, ptrace.ErrRestartNoIntr, ptrace.ErrRestartNoHand:
		rerun(code)
	case int64(unix.EINTR):
		// The calls signal(7) lists as failing with EINTR after a stop,
		// with no handler run, were ended by the checkpoint's freeze
		// itself: without it they would still be waiting. They run
		// again unless a handler runs, as ERESTARTNOHAND has the kernel
		// do; a signal pending for a handler still ends them with EINTR.
		if ptrace.InterruptedByStop(sc.Nr) {
			rerun(ptrace.ErrRestartNoHand)
		}
	case ptrace.ErrRestartRestartBlock:
		// ERESTARTNOHAND is what the kernel does with a restart block
		// when a handler runs (EINTR) or none does (run again).
		switch sc.Nr {
		case unix.SYS_NANOSLEEP:
			// nanosleep(req, rem): rem holds what was left.
			if rem := sc.Args[1]; rem != 0 {
				rerun(ptrace.ErrRestartNoHand)
				regs.Rdi, regs.Rsi = rem, rem
			} else {
				eintr()
			}
		case unix.SYS_CLOCK_NANOSLEEP:
			// clock_nanosleep(clock, flags, req, rem)
			switch {
			case sc.Args[1]&unix.TIMER_ABSTIME != 0:
				rerun(ptrace.ErrRestartNoHand)
			case sc.Args[3] != 0:
				rerun(ptrace.ErrRestartNoHand)
				regs.Rdx = sc.Args[3]
			default:
				eintr()
			}
		case unix.SYS_POLL:
			// poll(fds, nfds, timeout_ms): what was left is unknown, so it
			// waits its whole timeout again; a late return is what poll
			// callers handle, an EINTR many treat as fatal (tail -f does).
			rerun(ptrace.ErrRestartNoHand)
		default:
			eintr()
		}
	}
}

// wordsToRegs rebuilds struct user_regs_struct from the image's words.
func wordsToRegs(words []uint64) ptrace.Regs {
	var r ptrace.Regs
	dst := unsafe.Slice((*uint64)(unsafe.Pointer(&r)), unsafe.Sizeof(r)/8)
	copy(dst, words)
	return r
}

// ssDisable is SS_DISABLE from <signal.h>: no alternate signal stack.
const ssDisable = 2

package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/buildinfo"
	"github.com/crsub/crsub/internal/procfs"
	"github.com/crsub/crsub/internal/ptrace"
	"github.com/crsub/crsub/internal/remote"
	"github.com/crsub/crsub/internal/sys"
)

// processState is everything collected from a frozen process except its
// memory contents and files, which stream straight to the image.
type processState struct {
	header  ckpt.Header
	tree    ckpt.TreeProcess
	process ckpt.Process
	threads []ckpt.Thread
	signals ckpt.Signals
	mm      ckpt.MM
	// exeRemoved is the stat of the executable when its last name was
	// removed: its file is kept as a ghost.
	exeRemoved *unix.Stat_t
	maps       []procfs.Mapping
	// madvise holds, by VMA start, the madvise/mlock state of the VMAs
	// that have any (from smaps' VmFlags).
	madvise map[uint64][]string
	// dispositions has bit n-1 set for each signal n whose disposition
	// is not plain default (caught or ignored), plus SIGCHLD, whose
	// flags matter even at default.
	dispositions uint64
	// ignored are the signals the process ignores, sharedPending those
	// pending for it as a whole (bit n-1 for signal n).
	ignored, sharedPending uint64
	// namespaces are the process's namespaces other than crsub's, by
	// /proc/PID/ns/ entry name: their inodes.
	namespaces map[string]uint64
}

// collectProcess gathers what the image holds of frozen process pr, its
// memory contents and files aside. /proc is read before anything is run
// inside the process, and the memory layout just before: the calls
// injected into each thread go by it.
func (s *session) collectProcess(pr *proc) (*processState, error) {
	pid := pr.pid
	st := &processState{}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	// smaps read before the freeze, if it still holds (madvise.go); this
	// must come before any call is injected.
	adv, haveAdv := s.early.take(pid, stat.StartTime)
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	st.header = imageHeader()
	st.tree = treeRecord(pid, &stat, &status)

	if st.namespaces, err = s.namespaces.collect(pid, pid == s.root, status.NSpid); err != nil {
		return nil, err
	}
	st.dispositions = status.SigCgt | status.SigIgn | 1<<(unix.SIGCHLD-1)
	st.ignored = status.SigIgn
	if err := processRecord(pr, &stat, &status, &st.process); err != nil {
		return nil, err
	}

	st.signals.Pid = pid
	if st.signals.SharedPending, err = pending(pr.tracees[0], true); err != nil {
		return nil, err
	}
	st.sharedPending = signalMask(st.signals.SharedPending)
	// The memory layout before the calls injected below: they map a page
	// of their own and unmap it, which leaves the layout as it was, and
	// they look for a syscall instruction in it.
	if st.maps, err = readLayout(pid); err != nil {
		return nil, err
	}
	if err := s.collectThreads(st, pr); err != nil {
		return nil, err
	}
	if unknown := st.mm.Membarrier &^ membarrierKnown; unknown != 0 {
		return nil, fmt.Errorf("membarrier registrations %#x are not supported", unknown)
	}
	// Otherwise smaps is read now: while it walks the page tables, the
	// injected calls above would have waited to map their scratch page.
	var late chan madvise
	if !haveAdv {
		late = make(chan madvise, 1)
		go func() { late <- readMadvise(pid) }()
	}
	if st.tree.NsPid != 0 {
		if st.tree.NsTids, err = nsTids(pid, st.tree.Tids); err != nil {
			return nil, err
		}
	}
	if st.madvise, err = settleMadvise(pid, adv, late, st.maps); err != nil {
		return nil, err
	}
	if err := collectMM(pid, st, &stat, s.namespaces.elsewhere); err != nil {
		return nil, err
	}
	return st, nil
}

// imageHeader describes the machine the image is taken on: a restart
// refuses an image of another architecture or page size, and the rest
// tells a reader where an image came from.
func imageHeader() ckpt.Header {
	var uname unix.Utsname
	_ = unix.Uname(&uname)
	return ckpt.Header{Arch: runtime.GOARCH, KernelRelease: unix.ByteSliceToString(uname.Release[:]), PageSize: os.Getpagesize(), Created: time.Now().UTC(), Writer: buildinfo.Writer()}
}

// treeRecord is the process's place in the tree, but for its parent and
// threads, which the caller knows better: the parent as frozen, the
// threads as seized.
func treeRecord(pid int, stat *procfs.Stat, status *procfs.Status) ckpt.TreeProcess {
	tp := ckpt.TreeProcess{Pid: pid, Pgid: stat.Pgrp, Sid: stat.Session, Comm: stat.Comm}
	if n := len(status.NSpid); n > 1 {
		// Inside a pid namespace of its own: its pid there is the last.
		tp.NsPid = status.NSpid[n-1]
		if m := len(status.NSpgid); m > 1 {
			tp.NsPgid = status.NSpgid[m-1]
		}
	}
	return tp
}

// processRecord fills p with what /proc and ptrace tell of the process
// from outside, so that nothing of it has to be asked of the process
// itself; the rest is asked by the calls injected later (inject).
func processRecord(pr *proc, stat *procfs.Stat, status *procfs.Status, p *ckpt.Process) error {
	pid := pr.pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid)); err == nil {
		p.OOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/loginuid", pid)); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			uid := uint32(v)
			p.LoginUID = &uid
		}
	}
	p.Pid = pid
	p.Comm = stat.Comm
	p.Umask = status.Umask
	p.Stopped = pr.stopped
	if p.Stopped {
		// Seizing a stopped thread reports its group stop's signal.
		for _, t := range pr.tracees {
			if sig := t.GroupStopSignal(); sig != 0 {
				p.StopSignal = sig
				break
			}
		}
	}
	p.NoNewPrivs = status.NoNewPrivs
	p.Seccomp = status.Seccomp
	var err error
	if p.SeccompFilters, err = seccompFilters(pr.tracees[0], status.Seccomp); err != nil {
		return err
	}
	p.Creds = credsOf(*status)
	if p.Cwd, err = procfs.Cwd(pid); err != nil {
		return err
	}
	var cwd unix.Stat_t
	if dead, path, ok := deadProcDir(p.Cwd, fmt.Sprintf("/proc/%d/cwd", pid)); ok {
		p.Cwd, p.CwdDeadPid = path, dead
		// The proc it is on tells which pid namespace dead is of.
		if err := unix.Stat(fmt.Sprintf("/proc/%d/cwd", pid), &cwd); err == nil {
			p.CwdDev = cwd.Dev
		}
	} else if err := unix.Stat(fmt.Sprintf("/proc/%d/cwd", pid), &cwd); err == nil && cwd.Nlink == 0 {
		p.Cwd, p.CwdDeleted = strings.TrimSuffix(p.Cwd, " (deleted)"), true
		p.CwdDev, p.CwdInode = cwd.Dev, cwd.Ino
		p.CwdMode, p.CwdUID, p.CwdGID = cwd.Mode, cwd.Uid, cwd.Gid
	}
	if p.Root, err = procfs.Root(pid); err != nil {
		return err
	}
	if p.Personality, err = procfs.Personality(pid); err != nil {
		return err
	}
	if p.Rlimits, err = readRlimits(pid); err != nil {
		return err
	}
	if p.PosixTimers, err = readPosixTimers(pid); err != nil {
		return err
	}
	if p.Cgroups, err = readCgroups(pid, pid); err != nil {
		return err
	}
	return nil
}

// deadProcDir says whether link, what the /proc symbolic link at points to
// (a working directory), is the /proc/N directory (or one under it) of a
// process that has exited, and gives N and the path without its
// " (deleted)". The kernel unhashes such a directory when N is reaped, as
// it does a removed one.
func deadProcDir(link, at string) (int, string, bool) {
	var fs unix.Statfs_t
	if err := unix.Statfs(at, &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return 0, "", false
	}
	path, deleted := strings.CutSuffix(link, " (deleted)")
	tail, ok := strings.CutPrefix(path, "/proc/")
	num, _, _ := strings.Cut(tail, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 || num != strconv.Itoa(n) {
		return 0, "", false
	}
	if _, err := os.Stat("/proc/" + num); !deleted && err == nil {
		return 0, "", false
	}
	return n, path, true
}

// readCgroups reads the cgroups of thread tid of process pid.
func readCgroups(pid, tid int) ([]ckpt.Cgroup, error) {
	cgs, err := procfs.ReadCgroups(pid, tid)
	if err != nil {
		return nil, err
	}
	out := []ckpt.Cgroup{}
	for _, c := range cgs {
		out = append(out, ckpt.Cgroup{Controllers: c.Controllers, Path: c.Path})
	}
	return out, nil
}

// cgroupsApart are the cgroups of thread that are not its process's.
func cgroupsApart(thread, process []ckpt.Cgroup) []ckpt.Cgroup {
	var out []ckpt.Cgroup
	for _, c := range thread {
		if !slices.Contains(process, c) {
			out = append(out, c)
		}
	}
	return out
}

// seccompFilters reads the seccomp filters of thread t (its process's,
// for the main thread), oldest first as the image keeps them: a restart installs
// them in that order, and the kernel gives the newest first. Strict mode
// (1) has none.
func seccompFilters(t *ptrace.Tracee, mode int) ([][]byte, error) {
	var filters [][]byte
	switch mode {
	case 0:
	case 2:
		for i := 0; ; i++ {
			f, err := t.SeccompFilter(i)
			if errors.Is(err, unix.ENOENT) {
				break
			}
			if err != nil {
				return nil, err
			}
			filters = append([][]byte{f}, filters...)
		}
	}
	return filters, nil
}

// readRlimits reads the resource limits from /proc: prlimit(2) on a
// process of another user (a server's workers) needs CAP_SYS_RESOURCE.
func readRlimits(pid int) ([]ckpt.Rlimit, error) {
	lims, err := procfs.ReadLimits(pid)
	if err != nil {
		return nil, err
	}
	var rlimits []ckpt.Rlimit
	for _, l := range lims {
		rlimits = append(rlimits, ckpt.Rlimit{Resource: l.Resource, Cur: l.Cur, Max: l.Max})
	}
	return rlimits, nil
}

// readPosixTimers reads what /proc tells of the process's POSIX timers:
// which there are and how they notify, which timer_gettime does not tell.
// Their settings are asked of the process later (inject). Where /proc has
// no timers file, the process is taken to have none.
func readPosixTimers(pid int) ([]ckpt.PosixTimer, error) {
	timers, err := procfs.ReadTimers(pid)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []ckpt.PosixTimer
	for _, pt := range timers {
		notify := map[string]int{"signal": 0, "none": 1, "thread": 2}[pt.Notify]
		x := ckpt.PosixTimer{ID: pt.ID, ClockID: pt.ClockID, Notify: notify, Signal: pt.Signal, Value: pt.SigevValue}
		if pt.NotifyTID {
			x.Notify |= 4 // SIGEV_THREAD_ID
			x.Tid = pt.NotifyPID
		}
		out = append(out, x)
	}
	return out, nil
}

// readLayout reads the memory layout, with shared anonymous memory and
// AIO rings told apart from deleted files: the kernel names its shmem file
// "/dev/zero (deleted)", and it is stored as the object its inode
// identifies; an AIO ring is "/[aio] (deleted)" (aio.go).
func readLayout(pid int) ([]procfs.Mapping, error) {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return nil, err
	}
	for i := range maps {
		m := &maps[i]
		if m.Kind == procfs.KindFile && m.Shared && m.Deleted && m.Path == "/dev/zero" {
			m.Kind = procfs.KindAnon
		}
		if m.Kind == procfs.KindFile && m.Shared && m.Deleted && m.Path == aioRingPath {
			if err := classifyAIORing(pid, m); err != nil {
				return nil, err
			}
		}
	}
	return maps, nil
}

// collectThreads collects every thread of pr, the main thread first: it
// also answers for the process (collectThread), which the tree record
// lists the threads of.
func (s *session) collectThreads(st *processState, pr *proc) error {
	var tids []int
	for i, t := range pr.tracees {
		th, err := s.collectThread(st, pr.pid, t, i == 0)
		if err != nil {
			return fmt.Errorf("thread %d: %w", t.Tid, err)
		}
		st.threads = append(st.threads, *th)
		tids = append(tids, t.Tid)
	}
	// A thread's seccomp filters are its own: the ones it installed
	// after it was created, or with TSYNC, differ from the main thread's.
	for i, th := range st.threads[1:] {
		if th.Seccomp != seccompModeFilter {
			continue
		}
		own, err := seccompFilters(pr.tracees[i+1], seccompModeFilter)
		if err != nil {
			return fmt.Errorf("thread %d: %w", th.Tid, err)
		}
		if !slices.EqualFunc(own, st.process.SeccompFilters, slices.Equal) {
			st.threads[i+1].SeccompFilters = own
		}
	}
	st.tree.Tids = tids
	return nil
}

// nsTids are the ids of threads tids of pid in its own pid namespace, by
// which a restart recreates them there.
func nsTids(pid int, tids []int) ([]int, error) {
	var ns []int
	for _, tid := range tids {
		ts, err := procfs.ReadTaskStatus(pid, tid)
		if err != nil || len(ts.NSpid) < 2 {
			return nil, fmt.Errorf("thread %d: its id in its pid namespace: %v", tid, err)
		}
		ns = append(ns, ts.NSpid[len(ts.NSpid)-1])
	}
	return ns, nil
}

// settleMadvise is the madvise state of the process's VMAs: adv, smaps
// read before the freeze, or what late brings if smaps is being read now.
// smaps that does not describe the layout collected was read before the
// process changed it, and is read again.
func settleMadvise(pid int, adv madvise, late <-chan madvise, maps []procfs.Mapping) (map[uint64][]string, error) {
	if late != nil {
		adv = <-late
	}
	if !adv.describes(maps) {
		adv = readMadvise(pid)
	}
	if adv.err != nil {
		return nil, adv.err
	}
	return adv.flags, nil
}

// credsOf are the credentials /proc shows in status.
func credsOf(status procfs.Status) ckpt.Creds {
	return ckpt.Creds{Uid: status.Uid, Gid: status.Gid, Groups: status.Groups, CapInh: status.CapInh, CapPrm: status.CapPrm,
		CapEff: status.CapEff, CapBnd: status.CapBnd, CapAmb: status.CapAmb}
}

// collectThread reads one thread's registers and per-thread state. The
// main thread also answers for the process: dispositions, timers, brk.
func (s *session) collectThread(st *processState, pid int, t *ptrace.Tracee, main bool) (*ckpt.Thread, error) {
	regs, err := t.Regs()
	if err != nil {
		return nil, err
	}
	xstate, err := t.XState()
	if err != nil {
		return nil, err
	}
	layout, err := ptrace.ParseXStateLayout(xstate)
	if err != nil {
		return nil, err
	}
	st.header.XStateSize, st.header.XFeatures = layout.Size, layout.XCR0
	th := &ckpt.Thread{Pid: pid, Tid: t.Tid, Regs: regsToWords(&regs), XState: xstate}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, t.Tid)); err == nil {
		th.Comm = strings.TrimSuffix(string(comm), "\n")
	}
	if th.SigMask, err = t.SigMask(); err != nil {
		return nil, err
	}
	if th.Pending, err = pending(t, false); err != nil {
		return nil, err
	}
	if int64(regs.Orig_rax) >= 0 {
		th.Syscall = &ckpt.InterruptedSyscall{Nr: int64(regs.Orig_rax), Ret: int64(regs.Rax), Args: [6]uint64{regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9}}
	}
	switch rs, err := t.Rseq(); {
	case err == nil && rs.Address != 0:
		th.Rseq = &ckpt.Rseq{Addr: rs.Address, Len: rs.Size, Flags: rs.Flags, Signature: rs.Signature}
	case err != nil && !errors.Is(err, unix.EIO):
		// EIO is a kernel without the request (before 5.13), and without
		// rseq. Any other failure would drop the registration unsaid.
		return nil, err
	}
	var head, hlen uint64
	if _, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(t.Tid), uintptrOf(&head), uintptrOf(&hlen)); e != 0 {
		return nil, os.NewSyscallError("get_robust_list", e)
	}
	th.RobustList, th.RobustLen = head, hlen
	th.Sched = readSched(t.Tid)
	// The seccomp mode is the thread's own: strict mode is set for the
	// calling thread alone.
	ts, err := procfs.ReadTaskStatus(pid, t.Tid)
	if err != nil {
		return nil, err
	}
	th.Seccomp = ts.Seccomp
	// Credentials are per thread too: a raw setresuid(2) changes the
	// calling thread's alone (the C library's wrapper changes them all).
	if c := credsOf(ts); !main && !c.Equal(st.process.Creds) {
		th.Creds = &c
	}
	if !main {
		cgs, err := readCgroups(pid, t.Tid)
		if err != nil {
			return nil, err
		}
		th.Cgroups = cgroupsApart(cgs, st.process.Cgroups)
	}
	// What /proc does not show is asked of the thread itself.
	if err := s.inject(st, t, th, main); err != nil {
		return nil, err
	}
	return th, nil
}

// inject runs system calls inside the frozen process to read state that
// only the process itself can see, then puts everything back. The calls
// go in batches: each resume of the thread costs a trip through the
// scheduler, which a frozen process pays for.
func (s *session) inject(st *processState, t *ptrace.Tracee, th *ckpt.Thread, main bool) (err error) {
	r, err := remote.New(t)
	if err != nil {
		return fmt.Errorf("preparing system calls in the process: %w", err)
	}
	defer func() {
		if rerr := r.Restore(); rerr != nil && err == nil {
			err = fmt.Errorf("restoring the process after system calls in it: %w", rerr)
		}
	}()
	// A thread stopped inside an rseq critical section goes back at the
	// section's abort handler (Remote.Regs), in the image as in the running
	// process: the calls below return to user mode outside the section, and
	// the kernel then clears the section's descriptor in memory, which the
	// image holds as it is after. Restarted in the section with it cleared,
	// the thread would commit whatever it had begun, unguarded.
	regs := r.Regs()
	th.Regs = regsToWords(&regs)
	r.Know(remote.Known{Maps: st.maps, Signals: true, Ignored: st.ignored, Pending: st.sharedPending | signalMask(th.Pending)})
	if _, err := r.MapPage(0); err != nil {
		return fmt.Errorf("mapping a scratch page in the process: %w", err)
	}
	var qs []query
	add := func(what string, nr int, size int, args func(out uint64) []uint64, done func(ret uint64, out []byte)) {
		qs = append(qs, query{what: what, nr: nr, size: size, args: args, done: done})
	}
	// sigaltstack: stack_t is sp, flags (int, padded), size.
	add("sigaltstack", unix.SYS_SIGALTSTACK, 24, func(out uint64) []uint64 { return []uint64{0, out} }, func(_ uint64, b []byte) {
		th.AltStack = ckpt.AltStack{SP: le(b[0:]), Flags: int32(binary.LittleEndian.Uint32(b[8:])), Size: le(b[16:])}
	})
	// clear_child_tid is readable only from inside.
	add("prctl(PR_GET_TID_ADDRESS)", unix.SYS_PRCTL, 8, func(out uint64) []uint64 { return []uint64{unix.PR_GET_TID_ADDRESS, out} }, func(_ uint64, b []byte) {
		th.ClearChildTid = le(b)
	})
	add("prctl(PR_GET_PDEATHSIG)", unix.SYS_PRCTL, 4, func(out uint64) []uint64 { return []uint64{unix.PR_GET_PDEATHSIG, out} }, func(_ uint64, b []byte) {
		th.ParentDeathSignal = int(int32(binary.LittleEndian.Uint32(b)))
	})
	if main {
		// Signal dispositions: struct kernel_sigaction is handler, flags,
		// restorer, mask. Only the signals /proc shows handled or ignored
		// are asked about.
		for sig := 1; sig <= 64; sig++ {
			if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || st.dispositions&(1<<(sig-1)) == 0 {
				continue
			}
			add("rt_sigaction", unix.SYS_RT_SIGACTION, 32, func(out uint64) []uint64 { return []uint64{uint64(sig), 0, out, 8} }, func(_ uint64, b []byte) {
				a := ckpt.SigAction{Signo: sig, Handler: le(b[0:]), Flags: le(b[8:]), Restorer: le(b[16:]), Mask: le(b[24:])}
				if a != (ckpt.SigAction{Signo: sig}) {
					st.signals.Actions = append(st.signals.Actions, a)
				}
			})
		}
		// Interval timers: struct itimerval is interval then value, each a
		// timeval of seconds and microseconds.
		for which := range 3 {
			add("getitimer", unix.SYS_GETITIMER, 32, func(out uint64) []uint64 { return []uint64{uint64(which), out} }, func(_ uint64, b []byte) {
				st.process.Itimers[which] = ckpt.Itimer{
					IntervalUsec: int64(le(b[0:]))*1e6 + int64(le(b[8:])),
					ValueUsec:    int64(le(b[16:]))*1e6 + int64(le(b[24:])),
				}
			})
		}
		add("prctl(PR_GET_DUMPABLE)", unix.SYS_PRCTL, 0, func(uint64) []uint64 { return []uint64{unix.PR_GET_DUMPABLE, 0, 0, 0, 0} }, func(ret uint64, _ []byte) {
			d := int(ret)
			st.process.Dumpable = &d
		})
		add("prctl(PR_GET_CHILD_SUBREAPER)", unix.SYS_PRCTL, 4, func(out uint64) []uint64 { return []uint64{unix.PR_GET_CHILD_SUBREAPER, out} }, func(_ uint64, b []byte) {
			st.process.ChildSubreaper = binary.LittleEndian.Uint32(b) != 0
		})
		// POSIX timers: their setting, through timer_gettime (struct
		// itimerspec: interval then value, each seconds and nanoseconds).
		for i := range st.process.PosixTimers {
			pt := &st.process.PosixTimers[i]
			add(fmt.Sprintf("timer_gettime(%d)", pt.ID), unix.SYS_TIMER_GETTIME, 32, func(out uint64) []uint64 { return []uint64{uint64(pt.ID), out} }, func(_ uint64, b []byte) {
				pt.IntervalNsec = int64(le(b[0:]))*1e9 + int64(le(b[8:]))
				pt.ValueNsec = int64(le(b[16:]))*1e9 + int64(le(b[24:]))
			})
		}
		add("brk", unix.SYS_BRK, 0, func(uint64) []uint64 { return []uint64{0} }, func(ret uint64, _ []byte) {
			st.mm.Brk = ret
		})
		// membarrier registrations belong to the address space; a kernel
		// before 6.3 cannot tell them (EINVAL), and none are kept.
		qs = append(qs, query{what: "membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)", nr: unix.SYS_MEMBARRIER, optional: true,
			args: func(uint64) []uint64 { return []uint64{membarrierGetRegistrations, 0, 0} },
			done: func(ret uint64, _ []byte) { st.mm.Membarrier = uint32(ret) }})
		add("prctl(PR_GET_THP_DISABLE)", unix.SYS_PRCTL, 0, func(uint64) []uint64 { return []uint64{unix.PR_GET_THP_DISABLE, 0, 0, 0, 0} }, func(ret uint64, _ []byte) {
			st.mm.THPDisable = uint32(ret)
		})
	}
	return runQueries(r, qs)
}

// query is a system call injected to read something: it writes size bytes
// at the address args is given, and done takes them and the return value.
type query struct {
	what string
	nr   int
	size int
	args func(out uint64) []uint64
	done func(ret uint64, out []byte)
	// optional: an error leaves it undone rather than failing the batch.
	optional bool
}

// seccompModeFilter is SECCOMP_MODE_FILTER.
const seccompModeFilter = 2

// membarrierGetRegistrations is MEMBARRIER_CMD_GET_REGISTRATIONS (Linux
// 6.3), which x/sys lacks.
const membarrierGetRegistrations = 1 << 9

// membarrierKnown are the registrations a restart makes again:
// MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, _PRIVATE_EXPEDITED,
// _PRIVATE_EXPEDITED_SYNC_CORE and _PRIVATE_EXPEDITED_RSEQ.
const membarrierKnown = 1<<2 | 1<<4 | 1<<6 | 1<<8

// runQueries runs qs in batches, as many at a time as their output fits
// the scratch memory.
func runQueries(r *remote.Remote, qs []query) error {
	for len(qs) > 0 {
		var calls []remote.Call
		used := 0
		n := 0
		for ; n < len(qs); n++ {
			size := (qs[n].size + 7) &^ 7
			if used+size > r.BatchScratch() {
				break
			}
			calls = append(calls, remote.Call{Nr: qs[n].nr, Args: qs[n].args(r.ScratchAddr() + uint64(used))})
			used += size
		}
		if n == 0 {
			return fmt.Errorf("%s: %d bytes of output do not fit the scratch page", qs[0].what, qs[0].size)
		}
		rets, err := r.Batch(calls)
		if err != nil {
			return err
		}
		out := make([]byte, used)
		if used > 0 {
			if err := r.ReadMem(r.ScratchAddr(), out); err != nil {
				return err
			}
		}
		at := 0
		for i, q := range qs[:n] {
			if err := remote.ResultError(rets[i]); err != nil && !q.optional {
				return fmt.Errorf("%s in the process: %w", q.what, err)
			} else if err == nil {
				q.done(rets[i], out[at:at+q.size])
			}
			at += (q.size + 7) &^ 7
		}
		qs = qs[n:]
	}
	return nil
}

// readSched reads how thread tid is scheduled; what the kernel does not
// tell is left at its default.
func readSched(tid int) *ckpt.Sched {
	sc := &ckpt.Sched{}
	if a, err := unix.SchedGetAttr(tid, 0); err == nil {
		sc.Policy, sc.Flags, sc.Nice, sc.Priority = a.Policy, a.Flags, a.Nice, a.Priority
		sc.Runtime, sc.Deadline, sc.Period = a.Runtime, a.Deadline, a.Period
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err == nil {
		words := set[:]
		for len(words) > 0 && words[len(words)-1] == 0 {
			words = words[:len(words)-1]
		}
		for _, w := range words {
			sc.Affinity = append(sc.Affinity, uint64(w))
		}
	}
	if prio, err := sys.IoprioGet(tid); err == nil {
		sc.IOPrio = prio
	}
	return sc
}

// collectMM reads the memory layout of process pid; elsewhere finds its
// executable in another mount namespace of the image when its root does
// not show it (namespaces.elsewhere).
func collectMM(pid int, st *processState, stat *procfs.Stat, elsewhere func(pid int, path string, dev, ino uint64) (ckpt.FileIdentity, bool)) error {
	mm := &st.mm
	mm.Pid = pid
	mm.StartCode, mm.EndCode = stat.StartCode, stat.EndCode
	mm.StartData, mm.EndData = stat.StartData, stat.EndData
	mm.StartBrk, mm.StartStack = stat.StartBrk, stat.StartStack
	mm.ArgStart, mm.ArgEnd = stat.ArgStart, stat.ArgEnd
	mm.EnvStart, mm.EnvEnd = stat.EnvStart, stat.EnvEnd
	_, raw, err := procfs.ReadAuxv(pid)
	if err != nil {
		return err
	}
	for i := 0; i+16 <= len(raw); i += 16 {
		mm.Auxv = append(mm.Auxv, le(raw[i:]), le(raw[i+8:]))
	}
	exe, err := procfs.Exe(pid)
	if err != nil {
		return err
	}
	var exeStat unix.Stat_t
	if link := procfs.ParseFdTarget(exe); link.Deleted && unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &exeStat) == nil && exeStat.Nlink == 0 {
		// Its last name was removed: kept whole in the image (ExeGhost,
		// written with the mm record).
		st.exeRemoved = &exeStat
		mm.Exe = ckpt.FileIdentity{Path: link.Path, Dev: exeStat.Dev, Inode: exeStat.Ino, Size: exeStat.Size, Mtime: exeStat.Mtim.Nano()}
	} else if mm.Exe, err = identity(pid, exe); err != nil {
		var st unix.Stat_t
		other, ok := ckpt.FileIdentity{}, false
		if unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st) == nil {
			other, ok = elsewhere(pid, exe, st.Dev, st.Ino)
		}
		if !ok {
			return fmt.Errorf("executable: %w", err)
		}
		mm.Exe = other
	}
	for i := range st.maps {
		m := &st.maps[i]
		mm.Layout = append(mm.Layout, ckpt.Area{Start: m.Start, End: m.End, Kind: areaKind(m)})
	}
	return nil
}

func pending(t *ptrace.Tracee, shared bool) ([]ckpt.Siginfo, error) {
	infos, err := t.PendingSignals(shared)
	if err != nil {
		return nil, err
	}
	var out []ckpt.Siginfo
	for i := range infos {
		out = append(out, ckpt.Siginfo{Signo: infos[i].Signo(), Raw: append([]byte(nil), infos[i][:]...)})
	}
	return out, nil
}

// signalMask has bit n-1 set for each signal n among infos.
func signalMask(infos []ckpt.Siginfo) uint64 {
	var mask uint64
	for _, si := range infos {
		if si.Signo >= 1 && si.Signo <= 64 {
			mask |= 1 << (si.Signo - 1)
		}
	}
	return mask
}

func le(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

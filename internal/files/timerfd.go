package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

// A timerfd is its clock, its setting and the expirations not read yet.
// fdinfo's it_value is stale for a periodic timer that expired unread, so
// the setting is read with timerfd_gettime on the copy, which brings the
// timer up to date (as a read would, without consuming the expirations).
//
// A relative timer is restarted with the time it had left: it does not
// count the time the process spent checkpointed. An absolute one
// (TFD_TIMER_ABSTIME) is restarted at the same deadline on its clock.
// Unread expirations are put back with TFD_IOC_SET_TICKS, which needs a
// kernel with CONFIG_CHECKPOINT_RESTORE.
var timerfdKind = &Kind{
	Files:   []string{ckpt.FileTimerfd},
	Claims:  func(_ *DumpContext, fd *Fd) bool { return fd.Link.Kind == procfs.FdTimerfd },
	Dump:    dumpTimerfd,
	Restore: restoreTimerfd,
}

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, u64).
const tfdIocSetTicks = 0x40085400

func dumpTimerfd(c *DumpContext, fd *Fd) (ckpt.Objref, error) {
	st, err := readTimerfd(fd)
	if err != nil {
		return 0, err
	}
	f := ckpt.File{Kind: ckpt.FileTimerfd, Flags: int(fd.Info.Flags), Mode: fd.Stat.Mode, Identity: ckpt.FileIdentity{Inode: fd.Stat.Ino}, Timerfd: st}
	ref := c.W.NewObjref()
	return ref, c.WriteFile(fd, ref, nil, &f)
}

// readTimerfd reads a timerfd's setting and its unread expirations. The
// timer keeps running while the process is frozen, so the two are read
// between two timerfd_gettime calls, again if it expired in between.
func readTimerfd(fd *Fd) (*ckpt.TimerfdState, error) {
	if fd.Info.Timerfd == nil {
		return nil, errors.New("timerfd: fdinfo has no clockid")
	}
	cfd := int(fd.Copy.Fd())
	for try := 0; ; try++ {
		var before, after unix.ItimerSpec
		if err := unix.TimerfdGettime(cfd, &before); err != nil {
			return nil, fmt.Errorf("timerfd_gettime: %w", err)
		}
		info, err := procfs.ReadFdInfo(fd.Pid, fd.Num)
		if err != nil {
			return nil, err
		}
		tfd := info.Timerfd
		if tfd == nil {
			return nil, errors.New("timerfd: fdinfo has no clockid")
		}
		// An absolute timer's deadline is the clock's time plus the time
		// left, read right after it (a few microseconds apart).
		var now unix.Timespec
		if tfd.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0 {
			if err := unix.ClockGettime(int32(tfd.ClockID), &now); err != nil {
				return nil, fmt.Errorf("clock_gettime(%d): %w", tfd.ClockID, err)
			}
		}
		if err := unix.TimerfdGettime(cfd, &after); err != nil {
			return nil, fmt.Errorf("timerfd_gettime: %w", err)
		}
		if expiredBetween(before.Value, after.Value) && try < 3 {
			continue
		}
		return timerfdState(tfd.ClockID, tfd.SettimeFlags, tfd.Ticks, after, now)
	}
}

// expiredBetween reports whether a timer expired between two readings of
// the time it had left: it went from armed to disarmed, or up, not down.
func expiredBetween(before, after unix.Timespec) bool {
	b, a := before.Nano(), after.Nano()
	return b != 0 && (a == 0 || a > b)
}

// timerfdState is what the image keeps of a timer setting read at now (on
// the timer's clock; used only for absolute timers).
func timerfdState(clock, settimeFlags int, ticks uint64, cur unix.ItimerSpec, now unix.Timespec) (*ckpt.TimerfdState, error) {
	value, err := timespecNs(cur.Value)
	if err != nil {
		return nil, fmt.Errorf("timerfd: time left: %w", err)
	}
	interval, err := timespecNs(cur.Interval)
	if err != nil {
		return nil, fmt.Errorf("timerfd: interval: %w", err)
	}
	st := &ckpt.TimerfdState{ClockID: clock, SettimeFlags: settimeFlags, Value: value, Interval: interval, Ticks: ticks}
	if value != 0 && settimeFlags&unix.TFD_TIMER_ABSTIME != 0 {
		n, err := timespecNs(now)
		if err != nil || n > math.MaxInt64-value {
			return nil, fmt.Errorf("timerfd: deadline %d.%09d s + %d ns does not fit 64-bit nanoseconds", now.Sec, now.Nsec, value)
		}
		st.Deadline = n + value
	}
	return st, nil
}

// timespecNs converts a non-negative timespec to nanoseconds.
func timespecNs(ts unix.Timespec) (int64, error) {
	if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= 1e9 {
		return 0, fmt.Errorf("invalid time %d.%09d", ts.Sec, ts.Nsec)
	}
	if ts.Sec > (math.MaxInt64-ts.Nsec)/1e9 {
		return 0, fmt.Errorf("%d s do not fit 64-bit nanoseconds", ts.Sec)
	}
	return ts.Sec*1e9 + ts.Nsec, nil
}

// timerfdSetting is the timerfd_settime call that restarts a timer: its
// flags and setting, or armed false for a disarmed one.
func timerfdSetting(st *ckpt.TimerfdState) (flags int, spec unix.ItimerSpec, armed bool) {
	if st.Value <= 0 {
		return 0, unix.ItimerSpec{}, false
	}
	spec.Interval = unix.NsecToTimespec(st.Interval)
	if st.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0 && st.Deadline > 0 {
		spec.Value = unix.NsecToTimespec(st.Deadline)
		return st.SettimeFlags & (unix.TFD_TIMER_ABSTIME | unix.TFD_TIMER_CANCEL_ON_SET), spec, true
	}
	spec.Value = unix.NsecToTimespec(st.Value)
	return 0, spec, true
}

// itimerspecBytes is struct itimerspec as the kernel reads it.
func itimerspecBytes(spec unix.ItimerSpec) []byte {
	b := make([]byte, 0, 32)
	for _, v := range []int64{spec.Interval.Sec, spec.Interval.Nsec, spec.Value.Sec, spec.Value.Nsec} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func restoreTimerfd(c *RestoreContext, t Target, rec *ckpt.Record, f *ckpt.File) (int, error) {
	st := f.Timerfd
	if st == nil {
		return -1, errors.New("timerfd: no timer state in the image")
	}
	flags := uint64(unix.TFD_CLOEXEC)
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.TFD_NONBLOCK
	}
	fdv, err := t.Syscall(unix.SYS_TIMERFD_CREATE, uint64(st.ClockID), flags)
	if err != nil {
		return -1, fmt.Errorf("timerfd_create(clock %d): %w", st.ClockID, err)
	}
	fd := int(fdv)
	fail := func(err error) (int, error) {
		_, _ = t.Syscall(unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	settime := func(flags int, spec unix.ItimerSpec) error {
		addr, err := t.Scratch(itimerspecBytes(spec))
		if err == nil {
			_, err = t.Syscall(unix.SYS_TIMERFD_SETTIME, uint64(fd), uint64(flags), addr, 0)
		}
		if err != nil {
			return fmt.Errorf("timerfd_settime(flags %#x, value %d.%09d, interval %d.%09d): %w", flags,
				spec.Value.Sec, spec.Value.Nsec, spec.Interval.Sec, spec.Interval.Nsec, err)
		}
		return nil
	}
	sflags, spec, armed := timerfdSetting(st)
	if armed {
		if err := settime(sflags, spec); err != nil {
			return fail(err)
		}
	}
	if st.Ticks == 0 {
		return fd, nil
	}
	// timerfd_settime cleared the ticks: put back the unread expirations.
	addr, err := t.Scratch(binary.LittleEndian.AppendUint64(nil, st.Ticks))
	if err == nil {
		_, err = t.Syscall(unix.SYS_IOCTL, uint64(fd), tfdIocSetTicks, addr)
	}
	if err == nil {
		return fd, nil
	}
	if armed {
		t.Warn("timerfd: cannot restore its unread expirations (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE); they are lost", "ticks", st.Ticks, "err", err)
		return fd, nil
	}
	// An expired one-shot timer must still read as expired: arm it to
	// expire at once, which gives it one expiration.
	if err2 := settime(0, unix.ItimerSpec{Value: unix.Timespec{Nsec: 1}}); err2 != nil {
		return fail(fmt.Errorf("timerfd: restoring %d unread expirations: TFD_IOC_SET_TICKS: %v; %w", st.Ticks, err, err2))
	}
	if st.Ticks > 1 {
		t.Warn("timerfd: TFD_IOC_SET_TICKS failed: an expired timer reads 1 expiration instead of its unread ones", "ticks", st.Ticks, "err", err)
	}
	return fd, nil
}

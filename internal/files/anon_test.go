package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/procfs"
)

func TestTimespecNs(t *testing.T) {
	for _, tc := range []struct {
		ts      unix.Timespec
		want    int64
		wantErr bool
	}{
		{unix.Timespec{}, 0, false},
		{unix.Timespec{Sec: 0, Nsec: 250_000_000}, 250_000_000, false},
		{unix.Timespec{Sec: 3600, Nsec: 1}, 3_600_000_000_001, false},
		{unix.Timespec{Sec: math.MaxInt64 / 1_000_000_000, Nsec: math.MaxInt64 % 1_000_000_000}, math.MaxInt64, false},
		{unix.Timespec{Sec: math.MaxInt64 / 1_000_000_000, Nsec: math.MaxInt64%1_000_000_000 + 1}, 0, true},
		{unix.Timespec{Sec: math.MaxInt64}, 0, true},
		{unix.Timespec{Sec: -1}, 0, true},
		{unix.Timespec{Nsec: 1e9}, 0, true},
	} {
		got, err := timespecNs(tc.ts)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("timespecNs(%+v) = %d, %v; want %d, error %v", tc.ts, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestTimerfdState(t *testing.T) {
	spec := func(value, interval int64) unix.ItimerSpec {
		return unix.ItimerSpec{Value: unix.NsecToTimespec(value), Interval: unix.NsecToTimespec(interval)}
	}
	now := unix.Timespec{Sec: 1000, Nsec: 5}
	for _, tc := range []struct {
		name    string
		flags   int
		ticks   uint64
		cur     unix.ItimerSpec
		want    *ckpt.TimerfdState
		wantErr bool
	}{
		{"disarmed", 0, 0, spec(0, 0), &ckpt.TimerfdState{ClockID: 1}, false},
		{"expired one-shot", 0, 1, spec(0, 0), &ckpt.TimerfdState{ClockID: 1, Ticks: 1}, false},
		{"relative periodic", 0, 3, spec(70e6, 100e6), &ckpt.TimerfdState{ClockID: 1, Value: 70e6, Interval: 100e6, Ticks: 3}, false},
		{"absolute", unix.TFD_TIMER_ABSTIME, 0, spec(2e9, 0),
			&ckpt.TimerfdState{ClockID: 1, SettimeFlags: unix.TFD_TIMER_ABSTIME, Value: 2e9, Deadline: 1002e9 + 5}, false},
		{"absolute cancel-on-set", unix.TFD_TIMER_ABSTIME | unix.TFD_TIMER_CANCEL_ON_SET, 0, spec(1, 1e9),
			&ckpt.TimerfdState{ClockID: 1, SettimeFlags: 3, Value: 1, Interval: 1e9, Deadline: 1000e9 + 6}, false},
		{"absolute disarmed", unix.TFD_TIMER_ABSTIME, 2, spec(0, 0), &ckpt.TimerfdState{ClockID: 1, SettimeFlags: 1, Ticks: 2}, false},
		{"absolute overflow", unix.TFD_TIMER_ABSTIME, 0, spec(math.MaxInt64-10, 0), nil, true},
		{"bad interval", 0, 0, unix.ItimerSpec{Interval: unix.Timespec{Nsec: -1}}, nil, true},
	} {
		got, err := timerfdState(1, tc.flags, tc.ticks, tc.cur, now)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: state (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestTimerfdSetting(t *testing.T) {
	ts := unix.NsecToTimespec
	for _, tc := range []struct {
		name      string
		st        ckpt.TimerfdState
		wantFlags int
		wantSpec  unix.ItimerSpec
		wantArmed bool
	}{
		{"disarmed", ckpt.TimerfdState{Ticks: 1}, 0, unix.ItimerSpec{}, false},
		{"relative one-shot", ckpt.TimerfdState{Value: 5e8}, 0, unix.ItimerSpec{Value: ts(5e8)}, true},
		{"relative periodic", ckpt.TimerfdState{Value: 7e7, Interval: 1e8}, 0, unix.ItimerSpec{Value: ts(7e7), Interval: ts(1e8)}, true},
		{"absolute", ckpt.TimerfdState{SettimeFlags: 1, Value: 2e9, Deadline: 1002e9, Interval: 3e9}, unix.TFD_TIMER_ABSTIME,
			unix.ItimerSpec{Value: ts(1002e9), Interval: ts(3e9)}, true},
		{"absolute cancel-on-set", ckpt.TimerfdState{SettimeFlags: 3, Value: 1, Deadline: 7}, 3, unix.ItimerSpec{Value: ts(7)}, true},
		{"absolute without deadline", ckpt.TimerfdState{SettimeFlags: 1, Value: 9}, 0, unix.ItimerSpec{Value: ts(9)}, true},
	} {
		flags, spec, armed := timerfdSetting(&tc.st)
		if flags != tc.wantFlags || spec != tc.wantSpec || armed != tc.wantArmed {
			t.Errorf("%s: timerfdSetting = %#x, %+v, %v; want %#x, %+v, %v", tc.name, flags, spec, armed, tc.wantFlags, tc.wantSpec, tc.wantArmed)
		}
	}
}

func TestExpiredBetween(t *testing.T) {
	ts := unix.NsecToTimespec
	for _, tc := range []struct {
		before, after int64
		want          bool
	}{
		{0, 0, false},    // disarmed
		{100, 90, false}, // counting down
		{100, 100, false},
		{10, 0, true},  // one-shot fired
		{10, 95, true}, // periodic fired
	} {
		if got := expiredBetween(ts(tc.before), ts(tc.after)); got != tc.want {
			t.Errorf("expiredBetween(%d, %d) = %v, want %v", tc.before, tc.after, got, tc.want)
		}
	}
}

func TestItimerspecBytes(t *testing.T) {
	spec := unix.ItimerSpec{Interval: unix.Timespec{Sec: 1, Nsec: 2}, Value: unix.Timespec{Sec: 3, Nsec: 4}}
	b := itimerspecBytes(spec)
	if len(b) != int(unsafe.Sizeof(spec)) {
		t.Fatalf("%d bytes, struct itimerspec has %d", len(b), unsafe.Sizeof(spec))
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&spec)), unsafe.Sizeof(spec))
	if !bytes.Equal(b, raw) {
		t.Errorf("itimerspecBytes = %x, want %x", b, raw)
	}
}

func TestEventfdCreate(t *testing.T) {
	for _, tc := range []struct {
		count       uint64
		init        uint32
		writeAfter  uint64
		description string
	}{
		{0, 0, 0, "zero"},
		{5, 5, 0, "small"},
		{0xffffffff, 0xffffffff, 0, "largest initval"},
		{0x100000000, 0, 0x100000000, "above 32 bits"},
		{0xfffffffffffffffe, 0, 0xfffffffffffffffe, "largest count"},
	} {
		init, w := eventfdCreate(tc.count)
		if init != tc.init || w != tc.writeAfter {
			t.Errorf("%s: eventfdCreate(%#x) = %#x, %#x; want %#x, %#x", tc.description, tc.count, init, w, tc.init, tc.writeAfter)
		}
	}
}

func TestSigsetBytes(t *testing.T) {
	got := sigsetBytes(1<<(unix.SIGUSR1-1) | 1<<(unix.SIGTERM-1))
	want := []byte{0x00, 0x42, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("sigsetBytes = %x, want %x", got, want)
	}
}

func TestMountsOf(t *testing.T) {
	ms := []procfs.Mount{
		{ID: 1, Dev: 10, Root: "/sub", MountPoint: "/bind"},
		{ID: 2, Dev: 11, Root: "/", MountPoint: "/other"},
		{ID: 3, Dev: 10, Root: "/", MountPoint: "/"},
		{ID: 4, Dev: 10, Root: "/", MountPoint: "/again"},
	}
	var ids []int
	for _, m := range mountsOf(10, ms) {
		ids = append(ids, m.ID)
	}
	if diff := cmp.Diff([]int{3, 4, 1}, ids); diff != "" {
		t.Errorf("mountsOf (-want +got):\n%s", diff)
	}
	if got := mountsOf(12, ms); len(got) != 0 {
		t.Errorf("mountsOf(unknown dev) = %v", got)
	}
}

// fakeInotify numbers watches as the kernel does: one per path, from a
// cursor that only moves up.
type fakeInotify struct {
	next    int
	byPath  map[string]int
	queued  int // IN_IGNORED events
	maxQ    int
	drains  int
	removed int
}

func (f *fakeInotify) add(w *ckpt.InotifyWatch) (int, error) {
	if wd, ok := f.byPath[w.Path]; ok {
		return wd, nil
	}
	f.next++
	f.byPath[w.Path] = f.next
	return f.next, nil
}

func (f *fakeInotify) rm(wd int) error {
	for p, v := range f.byPath {
		if v == wd {
			delete(f.byPath, p)
			f.queued++
			f.maxQ = max(f.maxQ, f.queued)
			f.removed++
			return nil
		}
	}
	return unix.EINVAL
}

func (f *fakeInotify) drain() error { f.queued = 0; f.drains++; return nil }

func TestAddWatches(t *testing.T) {
	ws := func(spec ...any) []ckpt.InotifyWatch {
		var out []ckpt.InotifyWatch
		for i := 0; i < len(spec); i += 2 {
			out = append(out, ckpt.InotifyWatch{WD: spec[i].(int), Path: spec[i+1].(string)})
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		watches     []ckpt.InotifyWatch
		wantBurned  int
		wantErr     string
		wantDrained bool
	}{
		{"none", nil, 0, "", false},
		{"contiguous", ws(1, "/a", 2, "/b", 3, "/c"), 0, "", false},
		{"gaps", ws(1, "/a", 3, "/c", 5, "/e"), 2, "", true},
		{"unsorted", ws(5, "/e", 1, "/a", 3, "/c"), 2, "", true},
		{"starts late", ws(4, "/d"), 3, "", true},
		{"wide gap", ws(10000, "/x"), 9999, "", true},
		{"same file twice", ws(1, "/a", 2, "/a"), 0, "instead of 2", false},
		{"wd twice", ws(1, "/a", 1, "/b"), 0, "appears twice", false},
		{"too far", ws(maxBurnedWatches+2, "/far"), 0, "unused numbers", false},
	} {
		f := &fakeInotify{byPath: map[string]int{}}
		err := addWatches(tc.watches, f.add, f.rm, f.drain)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := map[int]string{}
		for p, wd := range f.byPath {
			got[wd] = p
		}
		want := map[int]string{}
		for _, w := range tc.watches {
			want[w.WD] = w.Path
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: watches (-want +got):\n%s", tc.name, diff)
		}
		if f.removed != tc.wantBurned || (f.drains > 0) != tc.wantDrained || f.queued != 0 || f.maxQ > 4096 {
			t.Errorf("%s: burned %d (want %d), %d drains, %d events left, at most %d queued", tc.name, f.removed, tc.wantBurned, f.drains, f.queued, f.maxQ)
		}
	}
}

// localTarget is a Target that is this very process: system calls run
// here, so a kind's restore side can be tried without ptrace.
type localTarget struct {
	scratch []byte
	warns   []string
}

func (l *localTarget) Pid() int { return os.Getpid() }

func (l *localTarget) Syscall(nr int, args ...uint64) (uint64, error) {
	var a [6]uintptr
	for i, v := range args {
		a[i] = uintptr(v)
	}
	r, _, errno := unix.Syscall6(uintptr(nr), a[0], a[1], a[2], a[3], a[4], a[5])
	if errno != 0 {
		return 0, errno
	}
	return uint64(r), nil
}

func (l *localTarget) Open(path string, flags int, mode uint32) (int, error) {
	return unix.Open(path, flags|unix.O_CLOEXEC, mode)
}

func (l *localTarget) Pipe2(flags int) (int, int, error) {
	var p [2]int
	err := unix.Pipe2(p[:], flags|unix.O_CLOEXEC)
	return p[0], p[1], err
}

func (l *localTarget) Copy(fd int) (*os.File, error) {
	c, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(c), "copy"), nil
}

func (l *localTarget) Hold(*int)                    {}
func (l *localTarget) Unhold(*int)                  {}
func (l *localTarget) FdOf(ckpt.Objref) (int, bool) { return -1, false }
func (l *localTarget) Warn(msg string, args ...any) { l.warns = append(l.warns, fmt.Sprint(msg, args)) }
func (l *localTarget) Scratch(b []byte) (uint64, error) {
	if l.scratch == nil {
		l.scratch = make([]byte, 8192)
	}
	if len(b) > len(l.scratch) {
		return 0, errors.New("too big")
	}
	copy(l.scratch, b)
	return uint64(uintptr(unsafe.Pointer(&l.scratch[0]))), nil
}

func (l *localTarget) ReadScratch(n int) ([]byte, error) {
	if n > len(l.scratch) {
		return nil, errors.New("too big")
	}
	return append([]byte(nil), l.scratch[:n]...), nil
}

// roundTrip dumps fd (a descriptor of this process) with its kind, reads
// the file record back and restores it here, returning the record and the
// new descriptor.
func roundTrip(t *testing.T, fd int) (*ckpt.File, int, *localTarget) {
	t.Helper()
	target, err := procfs.FdTarget(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	info, err := procfs.ReadFdInfo(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fd{Pid: os.Getpid(), Num: fd, Link: procfs.ParseFdTarget(target), Info: info, Copy: os.NewFile(uintptr(c), target)}
	defer f.Copy.Close()
	f.Info.Flags &^= unix.O_CLOEXEC
	if err := unix.Fstat(c, &f.Stat); err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	w, err := ckpt.NewWriter(&img, ckpt.Header{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := &DumpContext{W: w, Log: slog.New(slog.DiscardHandler)}
	kind, err := KindFor(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kind.Dump(ctx, f); err != nil {
		t.Fatalf("dump: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := ckpt.NewReader(&img)
	if err != nil {
		t.Fatal(err)
	}
	rc := &RestoreContext{}
	t.Cleanup(rc.Close)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			t.Fatal("no file record")
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != ckpt.TypeFile {
			if restore, ok := ForObject(rec.Type); ok {
				if err := restore(rc, &localTarget{}, rec); err != nil {
					t.Fatalf("restoring a %s record: %v", rec.Type, err)
				}
			}
			continue
		}
		var file ckpt.File
		if err := rec.Decode(&file); err != nil {
			t.Fatal(err)
		}
		k, err := ForFile(file.Kind)
		if err != nil {
			t.Fatal(err)
		}
		lt := &localTarget{}
		nfd, err := k.Restore(rc, lt, rec, &file)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		t.Cleanup(func() { unix.Close(nfd) })
		// O_TMPFILE is how a file was made, which a reopen does not repeat.
		if got, want := flagsOf(t, nfd), flagsOf(t, fd)&^unix.O_TMPFILE; got != want {
			t.Errorf("restored status flags %#o, want %#o", got, want)
		}
		return &file, nfd, lt
	}
}

func flagsOf(t *testing.T, fd int) int {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

func readU64(t *testing.T, fd int) uint64 {
	t.Helper()
	b := make([]byte, 8)
	if n, err := unix.Read(fd, b); n != 8 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	return binary.LittleEndian.Uint64(b)
}

func TestEventfdRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count uint64
		flags int
		reads []uint64
	}{
		{"semaphore", 3, unix.EFD_SEMAPHORE | unix.EFD_NONBLOCK, []uint64{1, 1, 1}},
		{"plain", 7, unix.EFD_NONBLOCK, []uint64{7}},
		{"above 32 bits", 0x1_0000_0005, unix.EFD_NONBLOCK, []uint64{0x1_0000_0005}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := unix.Eventfd(0, tc.flags|unix.EFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if _, err := unix.Write(fd, binary.LittleEndian.AppendUint64(nil, tc.count)); err != nil {
				t.Fatal(err)
			}
			file, nfd, _ := roundTrip(t, fd)
			if file.Eventfd == nil || file.Eventfd.Count != tc.count {
				t.Fatalf("image: %+v", file.Eventfd)
			}
			for _, want := range tc.reads {
				if got := readU64(t, nfd); got != want {
					t.Errorf("read %#x, want %#x", got, want)
				}
			}
			if _, err := unix.Read(nfd, make([]byte, 8)); err != unix.EAGAIN {
				t.Errorf("read after the count: %v, want EAGAIN", err)
			}
		})
	}
}

func TestTimerfdRoundTrip(t *testing.T) {
	const hour = int64(3600e9)
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &now); err != nil {
		t.Fatal(err)
	}
	// Hourly from 3 h ago: four expirations once brought up to date,
	// although fdinfo says 1 until then.
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(now.Nano() - 3*hour - 1e6), Interval: unix.NsecToTimespec(hour)}
	if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		t.Fatal(err)
	}
	file, nfd, lt := roundTrip(t, fd)
	st := file.Timerfd
	if st == nil || st.Ticks != 4 || st.Interval != hour || st.SettimeFlags != unix.TFD_TIMER_ABSTIME || st.ClockID != unix.CLOCK_REALTIME {
		t.Fatalf("image: %+v", st)
	}
	if got := readU64(t, nfd); got != 4 {
		t.Errorf("restored timer reads %d expirations, want 4 (warnings %q)", got, lt.warns)
	}
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(nfd, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Interval.Nano() != hour || cur.Value.Nano() <= hour-60e9 || cur.Value.Nano() > hour {
		t.Errorf("restored setting %+v", cur)
	}

	// A relative one-shot that has not fired.
	fd2, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	spec = unix.ItimerSpec{Value: unix.NsecToTimespec(hour)}
	if err := unix.TimerfdSettime(fd2, 0, &spec, nil); err != nil {
		t.Fatal(err)
	}
	file, nfd, _ = roundTrip(t, fd2)
	if err := unix.TimerfdGettime(nfd, &cur); err != nil {
		t.Fatal(err)
	}
	if file.Timerfd.Deadline != 0 || cur.Interval.Nano() != 0 || cur.Value.Nano() <= hour-60e9 || cur.Value.Nano() > hour {
		t.Errorf("relative one-shot: image %+v, restored %+v", file.Timerfd, cur)
	}
}

// noTicks is a target whose kernel has no TFD_IOC_SET_TICKS.
type noTicks struct{ localTarget }

func (n *noTicks) Syscall(nr int, args ...uint64) (uint64, error) {
	if nr == unix.SYS_IOCTL {
		return 0, unix.ENOTTY
	}
	return n.localTarget.Syscall(nr, args...)
}

func TestTimerfdWithoutSetTicks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		st        ckpt.TimerfdState
		wantRead  uint64 // 0: nothing to read
		wantWarns int
	}{
		{"expired once", ckpt.TimerfdState{ClockID: unix.CLOCK_MONOTONIC, Ticks: 1}, 1, 0},
		{"expired, read late", ckpt.TimerfdState{ClockID: unix.CLOCK_MONOTONIC, Ticks: 3}, 1, 1},
		{"armed", ckpt.TimerfdState{ClockID: unix.CLOCK_MONOTONIC, Value: 3600e9, Interval: 3600e9, Ticks: 2}, 0, 1},
	} {
		nt := &noTicks{}
		f := &ckpt.File{Kind: "timerfd", Flags: unix.O_NONBLOCK, Timerfd: &tc.st}
		fd, err := timerfdKind.Restore(&RestoreContext{}, nt, &ckpt.Record{}, f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(pfd, 100)
		var got uint64
		if pfd[0].Revents&unix.POLLIN != 0 {
			got = readU64(t, fd)
		}
		unix.Close(fd)
		if got != tc.wantRead || len(nt.warns) != tc.wantWarns {
			t.Errorf("%s: read %d expirations, %d warnings %q; want %d, %d", tc.name, got, len(nt.warns), nt.warns, tc.wantRead, tc.wantWarns)
		}
	}
}

func TestSignalfdRoundTrip(t *testing.T) {
	var set unix.Sigset_t
	set.Val[0] = 1<<(unix.SIGUSR1-1) | 1<<(unix.SIGWINCH-1)
	fd, err := unix.Signalfd(-1, &set, unix.SFD_NONBLOCK|unix.SFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	file, nfd, _ := roundTrip(t, fd)
	if file.Signalfd == nil || file.Signalfd.Sigmask != set.Val[0] {
		t.Fatalf("image: %+v", file.Signalfd)
	}
	info, err := procfs.ReadFdInfo(os.Getpid(), nfd)
	if err != nil {
		t.Fatal(err)
	}
	if info.Signalfd == nil || info.Signalfd.Sigmask != set.Val[0] {
		t.Errorf("restored mask %+v, want %#x", info.Signalfd, set.Val[0])
	}
}

func TestInotifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"a", "gap1", "b", "gap2", "gap3", "c"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for i, p := range paths {
		wd, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY|unix.IN_ATTRIB)
		if err != nil || wd != i+1 {
			t.Fatalf("inotify_add_watch %s = %d, %v", p, wd, err)
		}
	}
	for _, wd := range []uint32{2, 4, 5} {
		if _, err := unix.InotifyRmWatch(fd, wd); err != nil {
			t.Fatal(err)
		}
	}
	drainInotify(fd)
	if info, err := procfs.ReadFdInfo(os.Getpid(), fd); err != nil || len(info.Inotify) == 0 || info.Inotify[0].Handle == nil {
		t.Skipf("no file handles for %s in fdinfo (%v)", dir, err)
	}
	if _, err := unix.OpenByHandleAt(unix.AT_FDCWD, unix.NewFileHandle(1, make([]byte, 8)), unix.O_PATH); err == unix.EPERM {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	file, nfd, lt := roundTrip(t, fd)
	var got []string
	for _, w := range file.Inotify.Watches {
		got = append(got, fmt.Sprintf("%d %s %#x", w.WD, filepath.Base(w.Path), w.Mask))
	}
	if diff := cmp.Diff([]string{"1 a 0x6", "3 b 0x6", "6 c 0x6"}, got); diff != "" {
		t.Fatalf("image (-want +got):\n%s", diff)
	}
	if len(lt.warns) != 0 {
		t.Errorf("warnings: %q", lt.warns)
	}
	if n, err := unix.Read(nfd, make([]byte, 4096)); err != unix.EAGAIN {
		t.Errorf("restored instance has %d bytes of events queued (%v)", n, err)
	}
	info, err := procfs.ReadFdInfo(os.Getpid(), nfd)
	if err != nil {
		t.Fatal(err)
	}
	var wds []int
	for _, w := range info.Inotify {
		wds = append(wds, w.WD)
	}
	slices.Sort(wds)
	if diff := cmp.Diff([]int{1, 3, 6}, wds); diff != "" {
		t.Errorf("restored watch descriptors (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(paths[5], []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(nfd, buf)
	if err != nil || n < unix.SizeofInotifyEvent {
		t.Fatalf("no event after writing c: %d, %v", n, err)
	}
	if wd := int32(binary.LittleEndian.Uint32(buf)); wd != 6 {
		t.Errorf("event for wd %d, want 6", wd)
	}
}

// TestInotifyRemovedRoundTrip watches a file whose last name was removed
// (a ghost: the restored watch is on the file made again) and one removed
// under the name its watch was added through while another link remains
// (opened again by handle: the same inode).
func TestInotifyRemovedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	hfd, err := unix.Open(held, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hfd)
	if _, err := unix.Write(hfd, []byte("data")); err != nil {
		t.Fatal(err)
	}
	// "b" first, then "a": the handle's dentry is a's, the latest alias.
	other, linked := filepath.Join(dir, "b"), filepath.Join(dir, "a")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, linked); err != nil {
		t.Fatal(err)
	}
	lfd, err := unix.Open(linked, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, p := range []string{held, linked} {
		if _, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(held); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(linked); err != nil {
		t.Fatal(err)
	}
	drainInotify(fd)
	if info, err := procfs.ReadFdInfo(os.Getpid(), fd); err != nil || len(info.Inotify) == 0 || info.Inotify[0].Handle == nil {
		t.Skipf("no file handles for %s in fdinfo (%v)", dir, err)
	}
	if _, err := unix.OpenByHandleAt(unix.AT_FDCWD, unix.NewFileHandle(1, make([]byte, 8)), unix.O_PATH); err == unix.EPERM {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	var otherSt unix.Stat_t
	if err := unix.Stat(other, &otherSt); err != nil {
		t.Fatal(err)
	}
	file, nfd, _ := roundTrip(t, fd)
	type watch struct {
		WD        int
		Path      string
		Ghost     bool
		Handle    bool
		SameInode bool
	}
	var got []watch
	for _, w := range file.Inotify.Watches {
		got = append(got, watch{w.WD, w.Path, w.Ghost != 0, w.Handle != nil, w.Inode == otherSt.Ino})
	}
	want := []watch{{1, held, true, false, false}, {2, linked, false, true, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("image (-want +got):\n%s", diff)
	}
	info, err := procfs.ReadFdInfo(os.Getpid(), nfd)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[int]uint64{}
	for _, w := range info.Inotify {
		inodes[w.WD] = w.Ino
	}
	if inodes[2] != otherSt.Ino {
		t.Errorf("restored wd 2 watches inode %d, want %d (b's)", inodes[2], otherSt.Ino)
	}
	// wd 1 watches the ghost: a new inode with no name, the old one's
	// contents and mode.
	var ghost *os.File
	for _, w := range info.Inotify {
		if w.WD == 1 {
			mnt, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			g, err := unix.OpenByHandleAt(mnt, unix.NewFileHandle(w.Handle.Type, w.Handle.Handle), unix.O_RDWR|unix.O_CLOEXEC)
			unix.Close(mnt)
			if err != nil {
				t.Fatalf("opening wd 1's file: %v", err)
			}
			ghost = os.NewFile(uintptr(g), "ghost")
			defer ghost.Close()
		}
	}
	if ghost == nil {
		t.Fatalf("no wd 1 in the restored fdinfo: %+v", info.Inotify)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ghost.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ghost); string(b) != "data" || st.Nlink != 0 || st.Mode&0o777 != 0o640 {
		t.Errorf("wd 1 watches a file of %d links, mode %#o, holding %q; want the ghost of held", st.Nlink, st.Mode&0o777, b)
	}
	if _, err := ghost.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(nfd, buf)
	if err != nil {
		t.Fatalf("no events after writing both files: %v", err)
	}
	seen := map[int32]bool{}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		seen[int32(binary.LittleEndian.Uint32(buf[off:]))] = true
		off += unix.SizeofInotifyEvent + int(binary.LittleEndian.Uint32(buf[off+12:]))
	}
	if !seen[1] || !seen[2] {
		t.Errorf("events for watch descriptors %v, want 1 and 2", seen)
	}
}

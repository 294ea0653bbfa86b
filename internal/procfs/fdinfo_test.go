package procfs

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseFdInfo(t *testing.T) {
	rootDev := unix.Mkdev(0xfe, 0)
	tests := []struct {
		name    string
		file    string
		in      string
		want    FdInfo
		wantErr string
	}{{
		name: "epoll",
		file: "fdinfo-epoll.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Epoll: []EpollWatch{
			{TFD: 7, Events: 0x19, Ino: 0x2365, Dev: unix.Mkdev(0, 0xf)},
			{TFD: 6, Events: 0x80000019, Data: 0x5566778811223344, Ino: 0x40e, Dev: unix.Mkdev(0, 0x10)},
		}},
	}, {
		name: "eventfd",
		file: "fdinfo-eventfd.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Eventfd: &Eventfd{Count: 5, ID: 6, Semaphore: true}},
	}, {
		name: "eventfd count is hex",
		in:   "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\neventfd-count:               ff\neventfd-id: 3\neventfd-semaphore: 0\n",
		want: FdInfo{Flags: 0o2, MntID: 17, Ino: 1038, Eventfd: &Eventfd{Count: 255, ID: 3}},
	}, {
		name: "timerfd",
		file: "fdinfo-timerfd.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Timerfd: &Timerfd{ClockID: 1,
			Value: unix.Timespec{Sec: 99, Nsec: 999429736}, Interval: unix.Timespec{Sec: 1, Nsec: 250000000}}},
	}, {
		name: "signalfd",
		file: "fdinfo-signalfd.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Signalfd: &Signalfd{Sigmask: 1<<(10-1) | 1<<(15-1)}},
	}, {
		name: "inotify",
		file: "fdinfo-inotify.txt",
		want: FdInfo{Flags: 0o2000000, MntID: 17, Ino: 1038, Inotify: []InotifyWatch{
			{WD: 2, Ino: 0x2e1, Dev: rootDev, Mask: 0x2, Handle: &FileHandle{Type: 1, Handle: []byte{0xe1, 2, 0, 0, 0, 0, 0, 0}}},
			{WD: 1, Ino: 0x3c4a3, Dev: rootDev, Mask: 0x300, Handle: &FileHandle{Type: 1, Handle: []byte{0xa3, 0xc4, 3, 0, 0, 0, 0, 0}}},
		}},
	}, {
		name: "fanotify",
		file: "fdinfo-fanotify.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Fanotify: &Fanotify{Flags: 1, EventFlags: 0o100000, Marks: []FanotifyMark{
			{Kind: FanotifyMarkFilesystem, Dev: unix.Mkdev(0, 0x1b), Mask: 0x20},
			{Kind: FanotifyMarkMount, MntID: 27, Mask: 0x20},
			{Kind: FanotifyMarkInode, Ino: 0x3c4a3, Dev: rootDev, Mask: 0x28, Handle: &FileHandle{Type: 1, Handle: []byte{0xa3, 0xc4, 3, 0, 0, 0, 0, 0}}},
		}}},
	}, {
		name: "flock on deleted file",
		file: "fdinfo-flock.txt",
		want: FdInfo{Pos: 5, Flags: 0o2100002, MntID: 27, Ino: 9977922, Locks: []string{"1: FLOCK  ADVISORY  WRITE 6993 fe:00:9977922 0 EOF"}},
	}, {
		name: "posix and OFD locks",
		file: "fdinfo-posixlock.txt",
		want: FdInfo{Flags: 0o2102002, MntID: 27, Ino: 9978372, Locks: []string{
			"1: POSIX  ADVISORY  WRITE 6993 fe:00:9978372 0 9", "2: OFDLCK ADVISORY  READ -1 fe:00:9978372 20 EOF"}},
	}, {
		name: "pidfd",
		file: "fdinfo-pidfd.txt",
		want: FdInfo{Flags: 0o2000002, MntID: 4, Ino: 6994, Pidfd: &Pidfd{Pid: 6993, NSpid: []int{6993}}},
	}, {
		name: "socket keeps unknown lines",
		file: "fdinfo-socket.txt",
		want: FdInfo{Flags: 0o2, MntID: 10, Ino: 9062, Extra: map[string][]string{"scm_fds": {"0"}}},
	}, {
		name: "userfaultfd keeps unknown lines",
		file: "fdinfo-userfaultfd.txt",
		want: FdInfo{Flags: 0o2000000, MntID: 17, Ino: 9063, Extra: map[string][]string{
			"pending": {"0"}, "total": {"0"}, "API": {"aa:80000000:80000000000001ff"}}},
	}, {
		name: "memfd on an internal mount",
		file: "fdinfo-memfd.txt",
		want: FdInfo{Flags: 0o2100002, MntID: 0, Ino: 3},
	}, {
		name: "free-form and unknown fanotify lines",
		in:   "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\n  op=1, task_works=0\nSqe: x\nSqe: y\nfanotify mntns:5 mflags:0 mask:1 ignored_mask:0\n",
		want: FdInfo{Flags: 2, MntID: 1, Ino: 2, Fanotify: &Fanotify{}, Extra: map[string][]string{
			"": {"  op=1, task_works=0"}, "Sqe": {"x", "y"}, "fanotify": {"mntns:5 mflags:0 mask:1 ignored_mask:0"}}},
	}, {
		name: "inotify without a file handle",
		in:   "pos:\t0\nflags:\t0\nmnt_id:\t1\ninotify wd:a ino:1 sdev:100001 mask:1 ignored_mask:0\n",
		want: FdInfo{MntID: 1, Inotify: []InotifyWatch{{WD: 10, Ino: 1, Dev: unix.Mkdev(1, 1), Mask: 1}}},
	},
		{name: "missing mnt_id", in: "pos:\t0\nflags:\t02\n", wantErr: "field mnt_id: missing"},
		{name: "decimal flags", in: "pos:\t0\nflags:\t09\nmnt_id:\t1\n", wantErr: "line 2: field flags"},
		{name: "repeated pos", in: "pos:\t0\npos:\t1\n", wantErr: "line 2: field pos repeated"},
		{name: "bad epoll data", in: "pos:\t0\ntfd: 1 events: 1 data: zz pos:0 ino:1 sdev:1\n", wantErr: "line 2: tfd: item data"},
		{name: "epoll missing sdev", in: "tfd: 1 events: 1 data: 0 pos:0 ino:1\n", wantErr: "tfd: item sdev: missing"},
		{name: "epoll repeated item", in: "tfd: 1 tfd: 2\n", wantErr: "item tfd repeated"},
		{name: "bad timespec", in: "it_value: (1 2)\n", wantErr: "want (sec, nsec)"},
		{name: "bad handle hex", in: "inotify wd:1 ino:1 sdev:1 mask:1 ignored_mask:0 fhandle-bytes:1 fhandle-type:1 f_handle:zz\n", wantErr: "f_handle"},
		{name: "handle length mismatch", in: "inotify wd:1 ino:1 sdev:1 mask:1 ignored_mask:0 fhandle-bytes:2 fhandle-type:1 f_handle:00\n", wantErr: "fhandle-bytes says 2"},
		{name: "inotify item without colon", in: "inotify wd:1 junk\n", wantErr: "item \"junk\" has no ':'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if tc.file != "" {
				in = readTestdata(t, tc.file)
			}
			got, err := ParseFdInfo(in)
			if !wantErrContaining(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseFdInfo mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadFdInfoLive creates each kind of fd in this process and checks
// what the kernel reports, so a kernel that changes the format is caught.
func TestReadFdInfoLive(t *testing.T) {
	pid := os.Getpid()
	closeLater := func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	read := func(fd int) FdInfo {
		t.Helper()
		fi, err := ReadFdInfo(pid, fd)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}

	t.Run("epoll", func(t *testing.T) {
		ep := closeLater(unix.EpollCreate1(unix.EPOLL_CLOEXEC))
		ev := closeLater(unix.Eventfd(0, unix.EFD_CLOEXEC))
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ev, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: 0x11223344, Pad: 0x55667788}); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(ev, &st); err != nil {
			t.Fatal(err)
		}
		// The kernel always adds EPOLLERR|EPOLLHUP to the registered events.
		want := []EpollWatch{{TFD: ev, Events: unix.EPOLLIN | unix.EPOLLET | unix.EPOLLERR | unix.EPOLLHUP, Data: 0x5566778811223344, Ino: st.Ino, Dev: st.Dev}}
		if diff := cmp.Diff(want, read(ep).Epoll); diff != "" {
			t.Errorf("epoll watches (-want +got):\n%s", diff)
		}
	})
	t.Run("eventfd", func(t *testing.T) {
		ev := closeLater(unix.Eventfd(300, unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE|unix.EFD_NONBLOCK))
		got := read(ev)
		if got.Eventfd == nil || got.Eventfd.Count != 300 || !got.Eventfd.Semaphore {
			t.Errorf("eventfd = %+v", got.Eventfd)
		}
		if got.Flags&unix.O_NONBLOCK == 0 {
			t.Errorf("flags %#o lack O_NONBLOCK", got.Flags)
		}
	})
	t.Run("timerfd", func(t *testing.T) {
		tf := closeLater(unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_CLOEXEC))
		spec := unix.ItimerSpec{Interval: unix.Timespec{Nsec: 250000000}, Value: unix.Timespec{Sec: 1000}}
		if err := unix.TimerfdSettime(tf, 0, &spec, nil); err != nil {
			t.Fatal(err)
		}
		got := read(tf).Timerfd
		if got == nil || got.ClockID != unix.CLOCK_BOOTTIME || got.Interval != spec.Interval ||
			got.Value.Sec < 990 || got.Value.Sec > 1000 {
			t.Errorf("timerfd = %+v", got)
		}
	})
	t.Run("signalfd", func(t *testing.T) {
		var set unix.Sigset_t
		set.Val[0] = 1<<(unix.SIGUSR2-1) | 1<<(40-1) // a real-time signal too
		sf := closeLater(unix.Signalfd(-1, &set, unix.SFD_CLOEXEC))
		got := read(sf).Signalfd
		if got == nil || got.Sigmask != set.Val[0] {
			t.Errorf("signalfd = %+v, want mask %#x", got, set.Val[0])
		}
	})
	t.Run("inotify", func(t *testing.T) {
		in := closeLater(unix.InotifyInit1(unix.IN_CLOEXEC))
		dir := t.TempDir()
		var wds []int
		for i := 0; i < 17; i++ { // enough for a wd above 9 to show it is hex
			wd, err := unix.InotifyAddWatch(in, mkdir(t, dir, i), unix.IN_CREATE)
			if err != nil {
				t.Fatal(err)
			}
			wds = append(wds, wd)
		}
		got := map[int]bool{}
		for _, w := range read(in).Inotify {
			got[w.WD] = true
			if w.Mask != unix.IN_CREATE || w.Handle == nil {
				t.Errorf("watch %+v", w)
			}
		}
		for _, wd := range wds {
			if !got[wd] {
				t.Errorf("wd %d missing from %v", wd, got)
			}
		}
	})
	t.Run("fanotify", func(t *testing.T) {
		fa, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
		if err != nil {
			t.Skipf("fanotify: %v", err)
		}
		closeLater(fa, nil)
		dir := t.TempDir()
		if err := unix.FanotifyMark(fa, unix.FAN_MARK_ADD, unix.FAN_OPEN, unix.AT_FDCWD, dir); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Stat(dir, &st)
		got := read(fa).Fanotify
		if got == nil || len(got.Marks) != 1 || got.Marks[0].Ino != st.Ino || got.Marks[0].Dev != st.Dev {
			t.Errorf("fanotify = %+v, want one mark on ino %d dev %#x", got, st.Ino, st.Dev)
		}
	})
	t.Run("lock", func(t *testing.T) {
		f, err := os.Create(t.TempDir() + "/locked")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
			t.Fatal(err)
		}
		got := read(int(f.Fd()))
		if len(got.Locks) != 1 || !strings.Contains(got.Locks[0], "FLOCK") || !strings.Contains(got.Locks[0], "READ") {
			t.Errorf("locks = %q", got.Locks)
		}
		mounts, err := ReadMountinfo(pid)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := FindMount(mounts, got.MntID); !ok {
			t.Errorf("mnt_id %d not in mountinfo", got.MntID)
		}
	})
	t.Run("pidfd", func(t *testing.T) {
		pfd := closeLater(unix.PidfdOpen(pid, 0))
		got := read(pfd).Pidfd
		if got == nil || got.Pid != pid {
			t.Errorf("pidfd = %+v", got)
		}
	})

	if _, err := ReadFdInfo(pid, 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFdInfo(bad fd) = %v", err)
	}
}

func mkdir(t *testing.T, dir string, i int) string {
	t.Helper()
	p := dir + "/" + string(rune('a'+i))
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

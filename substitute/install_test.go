package substitute

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crsub/crsub/preserve"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// reserve returns n consecutive fd numbers held by /dev/null placeholders,
// with every lower number in use, so the next open(2) returns the number
// after them. Tests dup3 only onto numbers reserve handed out, never onto an
// fd the Go runtime or the test framework might own.
func reserve(t *testing.T, n int) []int {
	t.Helper()
	var fds []int
	for len(fds) < n || fds[len(fds)-1]-fds[len(fds)-n] != n-1 {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			preserve.Clear(fd)
			if fdPath(fd) == os.DevNull {
				unix.Close(fd)
			}
		}
	})
	return fds[len(fds)-n:]
}

func fdPath(fd int) string {
	s, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return s
}

func openFDs(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		fds = append(fds, fd)
	}
	// ReadDir's own directory fd is listed but already closed.
	return slices.DeleteFunc(fds, func(fd int) bool { return fdPath(fd) == "" })
}

func lowestFree(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	return fd
}

func writeFile(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t *testing.T, spec string) Source {
	t.Helper()
	s, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInstallCollisions(t *testing.T) {
	t.Run("source opened at another target", func(t *testing.T) {
		dir := t.TempDir()
		a, b := writeFile(t, dir, "a"), writeFile(t, dir, "b")
		fds := reserve(t, 2)
		lo, hi := fds[0], fds[1]
		unix.Close(hi)
		if got := lowestFree(t); got != hi {
			t.Fatalf("lowest free fd %d, want %d", got, hi)
		}
		// Sources open in target order, so a's file is opened at hi, the
		// number b's file must end up at.
		in, err := Install(map[int]Source{lo: mustParse(t, "file:"+a), hi: mustParse(t, "file:"+b)}, DefaultInstallOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer in.Undo()
		got := map[int]string{lo: fdPath(lo), hi: fdPath(hi)}
		if diff := cmp.Diff(map[int]string{lo: a, hi: b}, got); diff != "" {
			t.Errorf("fd -> file (-want +got):\n%s", diff)
		}
	})
	t.Run("swap launcher fds", func(t *testing.T) {
		dir := t.TempDir()
		fds := reserve(t, 2)
		x, y := fds[0], fds[1]
		for fd, name := range map[int]string{x: "x", y: "y"} {
			nfd, err := unix.Open(writeFile(t, dir, name), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Dup3(nfd, fd, unix.O_CLOEXEC)
			unix.Close(nfd)
		}
		var stX, stY unix.Stat_t
		unix.Fstat(x, &stX)
		unix.Fstat(y, &stY)
		in, err := Install(map[int]Source{x: {Kind: KindFD, FD: y}, y: {Kind: KindFD, FD: x}}, DefaultInstallOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer in.Undo()
		var gotX, gotY unix.Stat_t
		unix.Fstat(x, &gotX)
		unix.Fstat(y, &gotY)
		if diff := cmp.Diff([2]uint64{stY.Ino, stX.Ino}, [2]uint64{gotX.Ino, gotY.Ino}); diff != "" {
			t.Errorf("inodes at [x, y] (-want +got):\n%s", diff)
		}
	})
}

// largeFile is the O_LARGEFILE bit F_GETFL reports on 64-bit Linux, where
// x/sys/unix defines O_LARGEFILE as 0 because open(2) needs no such flag.
const largeFile = 0o100000

func TestInstallReportsAndMarks(t *testing.T) {
	dir := t.TempDir()
	fds := reserve(t, 2)
	before := openFDs(t)
	log := filepath.Join(dir, "new.log")
	in, err := Install(map[int]Source{
		fds[0]: mustParse(t, "null"),
		fds[1]: mustParse(t, "file:"+log+",create,append"),
	}, DefaultInstallOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []Placed{
		{FD: fds[0], Opened: Opened{Kind: KindNull, Spec: "null", Desc: "/dev/null (rw)", Flags: unix.O_RDWR | largeFile}},
		{FD: fds[1], Opened: Opened{Kind: KindFile, Spec: "file:" + log + ",append,create",
			Desc: log + " (rw,append,create)", Flags: unix.O_RDWR | unix.O_APPEND | largeFile}},
	}
	if diff := cmp.Diff(want, in.Placed(), cmpopts.IgnoreUnexported(Opened{})); diff != "" {
		t.Errorf("Placed (-want +got):\n%s", diff)
	}
	for _, fd := range fds {
		if !preserve.IsSet(fd) {
			t.Errorf("target %d not marked preserved", fd)
		}
	}
	if err := in.Undo(); err != nil {
		t.Fatal(err)
	}
	if err := in.Undo(); err != nil {
		t.Errorf("second Undo: %v", err)
	}
	// Undo closed the targets, which held placeholders before Install.
	after := openFDs(t)
	if diff := cmp.Diff(slices.DeleteFunc(before, func(fd int) bool { return slices.Contains(fds, fd) }), after); diff != "" {
		t.Errorf("open fds after Undo (-want +got):\n%s", diff)
	}
}

// A failing source must leave everything as it was: no target touched, no
// fd leaked, no socket file or process left behind.
func TestInstallAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	fds := reserve(t, 3)
	unix.Close(fds[2]) // one target starts out closed
	sock := filepath.Join(dir, "s.sock")
	before := openFDs(t)
	_, err := Install(map[int]Source{
		fds[0]: mustParse(t, "unix-listen:"+sock),
		fds[1]: mustParse(t, "exec:cat >/dev/null"),
		fds[2]: mustParse(t, "file:"+dir+"/missing/x"),
	}, DefaultInstallOptions())
	want := fmt.Sprintf("fd %d: substitute file:%s/missing/x: open %s/missing/x: no such file or directory", fds[2], dir, dir)
	if err == nil || err.Error() != want {
		t.Fatalf("Install error = %v, want %s", err, want)
	}
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Target != fds[2] || !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %#v: want *OpenError for fd %d wrapping ENOENT", err, fds[2])
	}
	if diff := cmp.Diff(before, openFDs(t)); diff != "" {
		t.Errorf("open fds changed (-before +after):\n%s", diff)
	}
	for _, fd := range fds[:2] {
		if fdPath(fd) != os.DevNull || preserve.IsSet(fd) {
			t.Errorf("target %d now %q (marked %v), want the untouched placeholder", fd, fdPath(fd), preserve.IsSet(fd))
		}
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestInstallTCPListenPortZero(t *testing.T) {
	fd := reserve(t, 1)[0]
	in, err := Install(map[int]Source{fd: mustParse(t, "tcp-listen:127.0.0.1:0")}, DefaultInstallOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Undo()
	p := in.Placed()[0]
	if p.Port == 0 || p.Addr != fmt.Sprintf("127.0.0.1:%d", p.Port) || p.Desc != "listening on "+p.Addr {
		t.Fatalf("Placed = %+v, want the chosen port", p)
	}
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		t.Fatalf("accept on fd %d: %v", fd, err)
	}
	unix.Close(nfd)
}

func TestListenAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := "tcp-listen:" + ln.Addr().String()
	_, _, err = mustParse(t, spec).Open(DefaultOpenOptions())
	if want := "substitute " + spec + ": address already in use"; err == nil || err.Error() != want {
		t.Errorf("Open error = %v, want %s", err, want)
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("errors.Is(%v, EADDRINUSE) = false", err)
	}

	sock := filepath.Join(t.TempDir(), "s")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	_, _, err = mustParse(t, "unix-listen:"+sock).Open(DefaultOpenOptions())
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("unix-listen on a live socket: %v, want EADDRINUSE", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("existing socket file touched: %v", err)
	}
}

func TestUnixListenAndDial(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	fds := reserve(t, 2)
	in, err := Install(map[int]Source{fds[0]: mustParse(t, "unix-listen:"+sock)}, DefaultInstallOptions())
	if err != nil {
		t.Fatal(err)
	}
	in2, err := Install(map[int]Source{fds[1]: mustParse(t, "unix:"+sock)}, DefaultInstallOptions())
	if err != nil {
		t.Fatal(err)
	}
	if p := in2.Placed()[0]; p.Peer != sock {
		t.Errorf("Peer = %q, want %q", p.Peer, sock)
	}
	nfd, _, err := unix.Accept(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	unix.Write(fds[1], []byte("hi"))
	buf := make([]byte, 2)
	if n, _ := unix.Read(nfd, buf); string(buf[:n]) != "hi" {
		t.Errorf("read %q over the socket pair", buf[:n])
	}
	in2.Undo()
	in.Undo()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("Undo left the socket file: %v", err)
	}
}

func TestInstallExec(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	fd := reserve(t, 1)[0]
	opts := DefaultInstallOptions()
	opts.Image = map[int]OpenOptions{fd: {Flags: unix.O_WRONLY}}
	in, err := Install(map[int]Source{fd: mustParse(t, "exec:cat > "+out)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Undo()
	p := in.Placed()[0]
	if p.Process == nil || p.Flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Fatalf("Placed = %+v, want a write-only pipe and a process", p)
	}
	if _, err := unix.Write(fd, []byte("line 1\nline 2\n")); err != nil {
		t.Fatal(err)
	}
	// The mark's held duplicate would keep the pipe open: clear it first.
	preserve.Clear(fd)
	unix.Close(fd)
	done := make(chan error, 1)
	go func() { _, err := p.Process.Wait(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command did not exit after the pipe was closed")
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != "line 1\nline 2\n" {
		t.Errorf("command received %q, %v", got, err)
	}
}

type fdState struct {
	Access                      string
	Append, NonBlock, CloseExec bool
}

func stateOf(t *testing.T, fd int) fdState {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	fdfl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return fdState{
		Access:    accessName(fl & unix.O_ACCMODE),
		Append:    fl&unix.O_APPEND != 0,
		NonBlock:  fl&unix.O_NONBLOCK != 0,
		CloseExec: fdfl&unix.FD_CLOEXEC != 0,
	}
}

// The substitute takes the image fd's access mode, O_APPEND, O_NONBLOCK and
// FD_CLOEXEC unless the spec says otherwise.
func TestOpenInheritsImageFlags(t *testing.T) {
	file := writeFile(t, t.TempDir(), "f")
	tests := []struct {
		spec  string
		image OpenOptions
		want  fdState
	}{
		{"file:" + file, OpenOptions{Flags: unix.O_RDWR}, fdState{Access: "read-write"}},
		{"file:" + file, OpenOptions{Flags: unix.O_WRONLY | unix.O_APPEND, FDFlags: unix.FD_CLOEXEC},
			fdState{Access: "write-only", Append: true, CloseExec: true}},
		{"file:" + file, OpenOptions{Flags: unix.O_RDONLY | unix.O_NONBLOCK}, fdState{Access: "read-only", NonBlock: true}},
		{"file:" + file + ",ro", OpenOptions{Flags: unix.O_RDWR}, fdState{Access: "read-only"}},
		{"file:" + file + ",append", OpenOptions{Flags: unix.O_WRONLY}, fdState{Access: "write-only", Append: true}},
		{"null", OpenOptions{Flags: unix.O_WRONLY | unix.O_NONBLOCK}, fdState{Access: "write-only", NonBlock: true}},
		{"tcp-listen:127.0.0.1:0", OpenOptions{Flags: unix.O_RDWR | unix.O_NONBLOCK, FDFlags: unix.FD_CLOEXEC},
			fdState{Access: "read-write", NonBlock: true, CloseExec: true}},
		{"tcp-listen:[::1]:0", OpenOptions{Flags: unix.O_RDWR}, fdState{Access: "read-write"}},
		{"exec:cat >/dev/null", OpenOptions{Flags: unix.O_RDWR | unix.O_NONBLOCK}, fdState{Access: "write-only", NonBlock: true}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			src := mustParse(t, tt.spec)
			fd, info, err := src.Open(tt.image)
			if err != nil {
				if strings.Contains(tt.spec, "::1") && errors.Is(err, unix.EADDRNOTAVAIL) {
					t.Skip("no IPv6 loopback")
				}
				t.Fatal(err)
			}
			got := stateOf(t, fd)
			unix.Close(fd)
			if info.Process != nil {
				stop(info.Process, 5*time.Second)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fd state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenAccessErrors(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	file := writeFile(t, t.TempDir(), "f")
	tests := []struct {
		spec  string
		image int
		want  string
	}{
		{fmt.Sprintf("fd:%d", p[1]), unix.O_RDWR, fmt.Sprintf("launcher fd %d is write-only but read-write is needed (the checkpointed fd's mode; write fd:%d,wo to accept write-only)", p[1], p[1])},
		{fmt.Sprintf("fd:%d", p[0]), unix.O_WRONLY, fmt.Sprintf("launcher fd %d is read-only but write-only is needed (the checkpointed fd's mode; write fd:%d,ro to accept read-only)", p[0], p[0])},
		{fmt.Sprintf("fd:%d,rw", p[1]), unix.O_WRONLY, fmt.Sprintf("launcher fd %d is write-only but read-write is needed", p[1])},
		{"exec:cat", unix.O_RDONLY, "an exec pipe is write-only but read-only is needed"},
		{"file:" + file + ",trunc", unix.O_RDONLY, "append and trunc need write access but the checkpointed fd was read-only; add wo or rw"},
	}
	for _, tt := range tests {
		src := mustParse(t, tt.spec)
		_, _, err := src.Open(OpenOptions{Flags: tt.image})
		if want := "substitute " + tt.spec + ": " + tt.want; err == nil || err.Error() != want {
			t.Errorf("%s with image %s: error %v, want %s", tt.spec, accessName(tt.image), err, want)
		}
	}
	var ae *AccessError
	_, _, err := mustParse(t, "exec:cat").Open(OpenOptions{Flags: unix.O_RDONLY})
	if !errors.As(err, &ae) || ae.Have != unix.O_WRONLY || ae.Need != unix.O_RDONLY {
		t.Errorf("errors.As(*AccessError) on %v = %+v", err, ae)
	}
}

// fd:N shares the launcher's open file description: same file, same offset.
func TestInstallFDDuplicates(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	fd := reserve(t, 1)[0]
	opts := DefaultInstallOptions()
	opts.Image = map[int]OpenOptions{fd: {Flags: unix.O_WRONLY}}
	in, err := Install(map[int]Source{fd: {Kind: KindFD, FD: p[1]}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Undo()
	pid := uintptr(os.Getpid())
	if r, _, errno := unix.Syscall6(unix.SYS_KCMP, pid, pid, 0 /* KCMP_FILE */, uintptr(fd), uintptr(p[1]), 0); r != 0 || errno != 0 {
		t.Errorf("kcmp(fd %d, launcher fd %d) = %d, %v; want the same file", fd, p[1], r, errno)
	}
	unix.Write(fd, []byte("x"))
	buf := make([]byte, 1)
	if n, _ := unix.Read(p[0], buf); n != 1 || buf[0] != 'x' {
		t.Errorf("read %q from the launcher's pipe", buf[:n])
	}
}

func TestInstallBadTarget(t *testing.T) {
	_, err := Install(map[int]Source{-1: {Kind: KindNull}}, DefaultInstallOptions())
	if err == nil || !strings.Contains(err.Error(), "target fd -1 is outside") {
		t.Errorf("error = %v", err)
	}
	_, err = Install(map[int]Source{5: {Kind: KindTCP}}, DefaultInstallOptions())
	var se *SpecError
	if !errors.As(err, &se) {
		t.Errorf("error = %v, want *SpecError", err)
	}
}

// Connected sockets come from the net package, which makes them
// non-blocking for its poller; the image's O_NONBLOCK must win.
func TestOpenDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, spec := range []string{"tcp:" + ln.Addr().String(), "udp:" + pc.LocalAddr().String()} {
		fd, info, err := mustParse(t, spec).Open(OpenOptions{Flags: unix.O_RDWR, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := stateOf(t, fd); got != (fdState{Access: "read-write"}) {
			t.Errorf("%s: fd state %+v, want blocking read-write", spec, got)
		}
		if want := strings.SplitN(spec, ":", 2)[1]; info.Peer != want || info.Port == 0 {
			t.Errorf("%s: Peer %q Port %d, want peer %s and the local port", spec, info.Peer, info.Port, want)
		}
		if _, err := unix.Write(fd, []byte("x")); err != nil {
			t.Errorf("%s: write: %v", spec, err)
		}
		unix.Close(fd)
	}
	_, _, err = mustParse(t, "tcp:127.0.0.1:1").Open(DefaultOpenOptions())
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dialing a closed port: %v, want ECONNREFUSED", err)
	}
	t.Log(err)
}

// A write mode creates a missing file, as a shell's >> does after a log
// rotation: with the creator's umask and ids, or as the caller would.
// An existing file keeps its mode and owner; nocreate and read-only fds do
// not create.
func TestOpenCreatesMissingFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	creator := &Creator{Umask: 0o027, UID: 4321, GID: 4322}
	type result struct {
		Err     string
		Mode    os.FileMode
		UID     int
		GID     int
		Content string
	}
	tests := []struct {
		name     string
		spec     string // %s is the path
		flags    int
		creator  *Creator
		existing bool
		want     result
	}{
		{"append creates for the image's process", "file:%s,append", unix.O_WRONLY, creator, false, result{Mode: 0o640, UID: 4321, GID: 4322}},
		{"write mode inherited from the image", "file:%s", unix.O_WRONLY | unix.O_APPEND, creator, false, result{Mode: 0o640, UID: 4321, GID: 4322}},
		{"mode= under the creator's umask", "file:%s,mode=0666", unix.O_RDWR, creator, false, result{Mode: 0o640, UID: 4321, GID: 4322}},
		{"existing file kept as it is", "file:%s,append", unix.O_WRONLY, creator, true, result{Mode: 0o600, Content: "old"}},
		{"nocreate fails", "file:%s,append,nocreate", unix.O_WRONLY, creator, false, result{Err: "no such file or directory"}},
		{"read-only does not create", "file:%s", unix.O_RDONLY, creator, false, result{Err: "no such file or directory"}},
		{"read-only with create", "file:%s,create", unix.O_RDONLY, creator, false, result{Mode: 0o640, UID: 4321, GID: 4322}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			if tt.existing {
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			opts := DefaultOpenOptions()
			opts.Flags, opts.Creator = tt.flags, tt.creator
			fd, _, err := mustParse(t, fmt.Sprintf(tt.spec, path)).Open(opts)
			var got result
			if err != nil {
				got.Err = unix.ENOENT.Error()
				if !errors.Is(err, unix.ENOENT) {
					got.Err = err.Error()
				}
			} else {
				unix.Close(fd)
				var st unix.Stat_t
				if err := unix.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(path)
				got = result{Mode: os.FileMode(st.Mode & 0o777), UID: int(st.Uid), GID: int(st.Gid), Content: string(b)}
				if tt.existing {
					got.UID, got.GID = 0, 0
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A held exec command runs only once released; closed unreleased (as when
// the caller dies: the hold's fd goes with it), its shell exits without
// running it, whatever it was given on its pipe.
func TestOpenExecHeld(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(map[bool]string{true: "released", false: "closed"}[release], func(t *testing.T) {
			dir := t.TempDir()
			out, ran := filepath.Join(dir, "out"), filepath.Join(dir, "ran")
			opts := DefaultOpenOptions()
			opts.Flags, opts.Held = unix.O_WRONLY, true
			fd, o, err := mustParse(t, "exec:touch "+ran+"; cat > "+out).Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			if o.Hold == nil || o.Process == nil {
				t.Fatalf("Opened = %+v, want a process and a hold", o)
			}
			if _, err := unix.Write(fd, []byte("held line\n")); err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			time.Sleep(100 * time.Millisecond)
			if _, err := os.Stat(ran); err == nil {
				t.Fatal("the command ran before its release")
			}
			if release {
				if err := o.Hold.Release(); err != nil {
					t.Fatal(err)
				}
			} else {
				o.Hold.Close()
			}
			done := make(chan *os.ProcessState, 1)
			go func() { st, _ := o.Process.Wait(); done <- st }()
			select {
			case st := <-done:
				if !st.Success() {
					t.Errorf("the shell exited with %v", st)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the shell did not exit")
			}
			got, err := os.ReadFile(out)
			if release && string(got) != "held line\n" {
				t.Errorf("released, the command received %q, %v", got, err)
			}
			if _, err := os.Stat(ran); release != (err == nil) {
				t.Errorf("released %v, ran: %v", release, err == nil)
			}
		})
	}
}

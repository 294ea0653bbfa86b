package preserve

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// helperEnv selects the helper mode of the test binary, as os/exec's tests do:
// the binary re-executed with it set runs childMain instead of the tests.
const helperEnv = "CRSUB_PRESERVE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "child" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// openTemp opens a fresh temporary file and closes it when the test ends,
// unless the test already did.
func openTemp(t *testing.T, name string) int {
	t.Helper()
	fd, err := unix.Open(filepath.Join(t.TempDir(), name), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		Clear(fd)
		// Close only if the number still holds what we opened; the test may
		// have closed it and something else may own the number now.
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && fileName(fd) != "" && strings.HasSuffix(fileName(fd), name) {
			unix.Close(fd)
		}
	})
	return fd
}

func fileName(fd int) string {
	s, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return s
}

func TestFcntlFlags(t *testing.T) {
	tests := []struct {
		name    string
		set     []int // successive F_SETFD arguments
		want    int   // F_GETFD afterwards
		wantKer int   // the kernel's own F_GETFD afterwards
	}{
		{"nothing", []int{0}, 0, 0},
		{"cloexec only", []int{unix.FD_CLOEXEC}, unix.FD_CLOEXEC, unix.FD_CLOEXEC},
		{"preserve only", []int{FD_PRESERVE}, FD_PRESERVE, 0},
		{"both", []int{FD_PRESERVE | unix.FD_CLOEXEC}, FD_PRESERVE | unix.FD_CLOEXEC, unix.FD_CLOEXEC},
		{"zero clears both", []int{FD_PRESERVE | unix.FD_CLOEXEC, 0}, 0, 0},
		{"cloexec clears preserve", []int{FD_PRESERVE, unix.FD_CLOEXEC}, unix.FD_CLOEXEC, unix.FD_CLOEXEC},
		{"set twice", []int{FD_PRESERVE, FD_PRESERVE}, FD_PRESERVE, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := openTemp(t, "f")
			for _, arg := range tt.set {
				if r, err := Fcntl(fd, unix.F_SETFD, arg); err != nil || r != 0 {
					t.Fatalf("Fcntl(F_SETFD, %#x) = %d, %v", arg, r, err)
				}
			}
			got, err := Fcntl(fd, unix.F_GETFD, 0)
			if err != nil {
				t.Fatal(err)
			}
			ker, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([2]int{tt.want, tt.wantKer}, [2]int{got, ker}); diff != "" {
				t.Errorf("[Fcntl F_GETFD, kernel F_GETFD] (-want +got):\n%s", diff)
			}
			if want := tt.want&FD_PRESERVE != 0; IsSet(fd) != want {
				t.Errorf("IsSet = %v, want %v", !want, want)
			}
		})
	}
}

func TestFcntlPassThrough(t *testing.T) {
	fd := openTemp(t, "f")
	if _, err := Fcntl(fd, unix.F_SETFL, unix.O_APPEND|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	fl, err := Fcntl(fd, unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.O_APPEND | unix.O_NONBLOCK | unix.O_RDWR; fl&(want|unix.O_ACCMODE) != want {
		t.Errorf("F_GETFL = %#o, want %#o set", fl, want)
	}
	// A duplicate made through Fcntl is a new fd and, like with FD_CLOEXEC
	// under F_DUPFD, does not inherit the mark.
	if _, err := Fcntl(fd, unix.F_SETFD, FD_PRESERVE); err != nil {
		t.Fatal(err)
	}
	dup, err := Fcntl(fd, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	got, _ := Fcntl(dup, unix.F_GETFD, 0)
	if got != unix.FD_CLOEXEC {
		t.Errorf("F_GETFD on duplicate = %#x, want FD_CLOEXEC only", got)
	}
}

func TestBadFD(t *testing.T) {
	fd := openTemp(t, "f")
	unix.Close(fd)
	if _, err := Fcntl(fd, unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("Fcntl(F_GETFD) on closed fd: %v, want EBADF", err)
	}
	if _, err := Fcntl(fd, unix.F_SETFD, FD_PRESERVE); err != unix.EBADF {
		t.Errorf("Fcntl(F_SETFD) on closed fd: %v, want EBADF", err)
	}
	err := Set(fd)
	if !errors.Is(err, unix.EBADF) {
		t.Errorf("Set on closed fd: %v, want EBADF", err)
	}
	if want := fmt.Sprintf("fd %d: bad file descriptor", fd); err == nil || err.Error() != want {
		t.Errorf("Set error = %v, want %q", err, want)
	}
	if IsSet(fd) {
		t.Error("closed fd reported as marked")
	}
}

// The mark belongs to the open file, not the number: each of these replaces
// what the number refers to, after which the mark must not be honored.
func TestMarkFollowsFile(t *testing.T) {
	tests := []struct {
		name    string
		replace func(t *testing.T, fd int)
	}{
		{"close", func(t *testing.T, fd int) {
			unix.Close(fd)
		}},
		{"close and reopen same path at same number", func(t *testing.T, fd int) {
			path := fileName(fd)
			unix.Close(fd)
			nfd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if nfd != fd {
				if err := unix.Dup3(nfd, fd, unix.O_CLOEXEC); err != nil {
					t.Fatal(err)
				}
				unix.Close(nfd)
			}
			if fileName(fd) != path {
				t.Fatalf("fd %d is %s, want %s", fd, fileName(fd), path)
			}
		}},
		{"dup2 of another file over it", func(t *testing.T, fd int) {
			other := openTemp(t, "other")
			if err := unix.Dup3(other, fd, unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := openTemp(t, "f")
			keep := openTemp(t, "keep")
			for _, f := range []int{fd, keep} {
				if err := Set(f); err != nil {
					t.Fatal(err)
				}
			}
			tt.replace(t, fd)
			if IsSet(fd) {
				t.Errorf("fd %d still marked after replacement", fd)
			}
			if got, err := Fcntl(fd, unix.F_GETFD, 0); err == nil && got&FD_PRESERVE != 0 {
				t.Errorf("F_GETFD = %#x, has FD_PRESERVE", got)
			}
			if slices.Contains(List(), fd) {
				t.Errorf("List() = %v contains %d", List(), fd)
			}
			if !IsSet(keep) {
				t.Errorf("untouched fd %d lost its mark", keep)
			}
		})
	}
}

// The held duplicate must not take the number the next open(2) would get,
// or the package would shift every fd the program opens afterwards.
func TestHeldDuplicateStaysHigh(t *testing.T) {
	lowest := func() int {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		return fd
	}
	fd := openTemp(t, "f")
	before := lowest()
	if err := Set(fd); err != nil {
		t.Fatal(err)
	}
	if after := lowest(); after != before {
		t.Errorf("lowest free fd moved from %d to %d after Set", before, after)
	}
}

func TestClearKeepsFD(t *testing.T) {
	fd := openTemp(t, "f")
	if err := Set(fd); err != nil {
		t.Fatal(err)
	}
	Clear(fd)
	if IsSet(fd) {
		t.Error("still marked after Clear")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		t.Errorf("Clear closed the fd: %v", err)
	}
}

// A pipe's reader sees EOF once the writer closes, even though the mark held
// a duplicate of the write end, provided the writer clears the mark first.
func TestClearThenCloseGivesEOF(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	if err := Set(p[1]); err != nil {
		t.Fatal(err)
	}
	Clear(p[1])
	unix.Close(p[1])
	n, err := unix.Read(p[0], make([]byte, 1))
	if n != 0 || err != nil {
		t.Errorf("read = %d, %v; want EOF", n, err)
	}
}

func TestConcurrent(t *testing.T) {
	const workers = 8
	shared := openTemp(t, "shared")
	var wg sync.WaitGroup
	for w := range workers {
		fd := openTemp(t, fmt.Sprint("w", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := Set(fd); err != nil {
					t.Error(err)
					return
				}
				if !IsSet(fd) || !slices.Contains(List(), fd) {
					t.Errorf("fd %d not marked after Set", fd)
					return
				}
				if got, _ := Fcntl(fd, unix.F_GETFD, 0); got&FD_PRESERVE == 0 {
					t.Errorf("F_GETFD = %#x lacks FD_PRESERVE", got)
					return
				}
				Clear(fd)
				if IsSet(fd) {
					t.Errorf("fd %d marked after Clear", fd)
					return
				}
				// Race on one fd too; only the absence of data races is checked.
				if i%2 == 0 {
					Set(shared)
				} else {
					Fcntl(shared, unix.F_SETFD, unix.FD_CLOEXEC)
				}
			}
		}()
	}
	wg.Wait()
}

func TestFromEnvironErrors(t *testing.T) {
	open := openTemp(t, "open")
	closed := openTemp(t, "closed")
	unix.Close(closed)
	tests := []struct {
		env     []string
		wantErr string
	}{
		{[]string{EnvVar + "=x"}, `"x" is not a decimal fd number`},
		{[]string{EnvVar + "=-1"}, `"-1" is not a decimal fd number`},
		{[]string{EnvVar + "= 3"}, `" 3" is not a decimal fd number`},
		{[]string{EnvVar + "=3,,4"}, "empty item"},
		{[]string{EnvVar + "=99999999999"}, `fd "99999999999" out of range`},
		{[]string{fmt.Sprintf("%s=%d,%d", EnvVar, open, open)}, fmt.Sprintf("fd %d listed twice", open)},
		{[]string{fmt.Sprintf("%s=%d,%d", EnvVar, open, closed)}, fmt.Sprintf("fd %d is not open: bad file descriptor", closed)},
		{[]string{EnvVar + "=1", EnvVar + "=2"}, `given twice, "1" and "2"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			fds, err := FromEnviron(tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("FromEnviron = %v, %v; want error containing %q", fds, err, tt.wantErr)
			}
			if IsSet(open) {
				t.Errorf("fd %d marked although FromEnviron failed", open)
			}
		})
	}
}

func TestFromEnvironAbsentOrEmpty(t *testing.T) {
	for _, env := range [][]string{nil, {"PATH=/bin"}, {EnvVar + "="}} {
		fds, err := FromEnviron(env)
		if err != nil || fds != nil {
			t.Errorf("FromEnviron(%q) = %v, %v; want nil, nil", env, fds, err)
		}
	}
}

// TestEnvironExec hands two marked fds to a re-executed copy of the test
// binary (childMain) through the environment and the fds themselves.
func TestEnvironExec(t *testing.T) {
	a, b := openTemp(t, "a"), openTemp(t, "b")
	unmarked := openTemp(t, "unmarked")
	for _, fd := range []int{a, b} {
		if err := Set(fd); err != nil {
			t.Fatal(err)
		}
	}
	env, err := Environ()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s=%d,%d", EnvVar, a, b); env != want {
		t.Errorf("Environ() = %q, want %q", env, want)
	}
	for _, fd := range []int{a, b} {
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC != 0 {
			t.Errorf("fd %d still close-on-exec after Environ", fd)
		}
	}
	// Let the child check it got these very files, not just open numbers.
	for i, fd := range []int{a, b} {
		if _, err := unix.Write(fd, []byte(fmt.Sprint("file", i))); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env, helperEnv+"=child",
		fmt.Sprintf("WANT=%d:%s,%d:%s", a, fileName(a), b, fileName(b)),
		fmt.Sprintf("UNMARKED=%d:%s", unmarked, fileName(unmarked)))
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}

// childMain runs in the re-executed test binary.
func childMain() int {
	fail := func(format string, args ...any) int {
		fmt.Printf(format+"\n", args...)
		return 1
	}
	fds, err := FromEnviron(os.Environ())
	if err != nil {
		return fail("FromEnviron: %v", err)
	}
	var want []int
	for item := range strings.SplitSeq(os.Getenv("WANT"), ",") {
		num, path, _ := strings.Cut(item, ":")
		fd, _ := strconv.Atoi(num)
		want = append(want, fd)
		if got := fileName(fd); got != path {
			return fail("fd %d is %q, want %q", fd, got, path)
		}
		if !IsSet(fd) {
			return fail("fd %d not marked", fd)
		}
		if fl, err := Fcntl(fd, unix.F_GETFD, 0); err != nil || fl&FD_PRESERVE == 0 {
			return fail("F_GETFD(%d) = %#x, %v", fd, fl, err)
		}
	}
	if diff := cmp.Diff(want, fds); diff != "" {
		return fail("FromEnviron fds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, List()); diff != "" {
		return fail("List (-want +got):\n%s", diff)
	}
	num, path, _ := strings.Cut(os.Getenv("UNMARKED"), ":")
	if fd, _ := strconv.Atoi(num); fileName(fd) == path || IsSet(fd) {
		return fail("close-on-exec fd %d crossed exec", fd)
	}
	fmt.Println("ok")
	return 0
}

func TestParseFDs(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"0", []int{0}},
		{"3,7", []int{3, 7}},
		{"7,3", []int{7, 3}},
		{"003", []int{3}},
		{"2147483647", []int{2147483647}},
	}
	for _, tt := range tests {
		got, err := parseFDs(tt.in)
		if err != nil {
			t.Errorf("parseFDs(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseFDs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzParseFDs(f *testing.F) {
	for _, s := range []string{"", "3", "3,7", "3,3", "-1", "3,,4", "1,2,3,4,5", "99999999999", " 4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fds, err := parseFDs(s)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, fd := range fds {
			if fd < 0 || seen[fd] {
				t.Fatalf("parseFDs(%q) = %v: negative or duplicate fd", s, fds)
			}
			seen[fd] = true
		}
		again, err := parseFDs(formatFDs(fds))
		if err != nil {
			t.Fatalf("parseFDs(%q) = %v, reparsing %q: %v", s, fds, formatFDs(fds), err)
		}
		if diff := cmp.Diff(fds, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, diff)
		}
	})
}

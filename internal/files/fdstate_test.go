package files

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/ckpt"
)

func TestParseLockLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want ckpt.FileLock
		ok   bool
		err  bool
	}{
		{"1: FLOCK  ADVISORY  WRITE 6993 fe:00:9977922 0 EOF", ckpt.FileLock{Kind: "flock", Write: true}, true, false},
		{"1: POSIX  ADVISORY  WRITE 6993 fe:00:9978372 0 9", ckpt.FileLock{Kind: "posix", Write: true, Len: 10, Pid: 6993}, true, false},
		{"2: POSIX  ADVISORY  READ 12 fe:00:1 100 EOF", ckpt.FileLock{Kind: "posix", Start: 100, Pid: 12}, true, false},
		{"1: OFDLCK ADVISORY  READ -1 fe:00:9978373 0 EOF", ckpt.FileLock{Kind: "ofd"}, true, false},
		{"1: LEASE  ACTIVE    READ 7 fe:00:1 0 EOF", ckpt.FileLock{}, false, false},
		{"1: POSIX  MANDATORY WRITE 7 fe:00:1 0 EOF", ckpt.FileLock{}, false, false},
		{"1: POSIX  ADVISORY  WRITE x fe:00:1 0 EOF", ckpt.FileLock{}, false, true},
		{"1: POSIX  ADVISORY  WRITE 7 fe:00:1 9 3", ckpt.FileLock{}, false, true},
		{"garbage", ckpt.FileLock{}, false, true},
	} {
		got, ok, err := ParseLockLine(tc.line)
		if (err != nil) != tc.err || ok != tc.ok {
			t.Errorf("%q: ok %v, err %v; want ok %v, error %v", tc.line, ok, err, tc.ok, tc.err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.line, diff)
		}
	}
}

func FuzzParseLockLine(f *testing.F) {
	f.Add("1: POSIX  ADVISORY  WRITE 6993 fe:00:9978372 0 9")
	f.Add("1: FLOCK  ADVISORY  WRITE 6993 fe:00:9977922 0 EOF")
	f.Fuzz(func(t *testing.T, line string) {
		l, ok, err := ParseLockLine(line)
		if ok && err == nil && l.Len < 0 {
			t.Errorf("%q: negative length %d", line, l.Len)
		}
	})
}

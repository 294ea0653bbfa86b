package sys

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNewNetNSInNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ns, err := NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var made, ours unix.Stat_t
	if err := unix.Fstat(ns.Int(), &made); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &ours); err != nil {
		t.Fatal(err)
	}
	if made.Ino == ours.Ino {
		t.Fatalf("the new namespace is ours (inode %d)", ours.Ino)
	}
	inside, err := InNetNS(ns.Int(), func() (uint64, error) {
		var st unix.Stat_t
		err := unix.Stat("/proc/thread-self/ns/net", &st)
		return st.Ino, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != made.Ino {
		t.Errorf("InNetNS ran in namespace %d, want %d", inside, made.Ino)
	}
	if _, err := InNetNS(-1, func() (int, error) { return 0, nil }); err == nil {
		t.Error("InNetNS(-1): no error")
	}
	// The caller's thread is where it was.
	var after unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &after); err != nil || after.Ino != ours.Ino {
		t.Errorf("after InNetNS the test runs in namespace %d, want %d (%v)", after.Ino, ours.Ino, err)
	}
}

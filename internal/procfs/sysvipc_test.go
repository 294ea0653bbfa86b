package procfs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSysVShm(t *testing.T) {
	in := "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n" +
		"   9978263         55   600                    56 27140 27155      0   101   104   101   104 1796134233 1796134234 1796134232                  4096                     0\n" +
		"         0         56  1666                  8192    10    11      2     0     0     0     0          0          0          0                     0                     0\n"
	got, err := ParseSysVShm([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []SysVShm{
		{Key: 9978263, ID: 55, Perms: 0o600, Size: 56, Nattch: 0, UID: 101, GID: 104, CreatorPID: 27140, LastAttachPID: 27155},
		{Key: 0, ID: 56, Perms: 0o1666, Size: 8192, Nattch: 2, CreatorPID: 10, LastAttachPID: 11},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "key shmid\n1 2\n", "       key      shmid perms size  cpid  lpid nattch   uid   gid\n1 2 3\n"} {
		if _, err := ParseSysVShm([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseSysVSemMsg(t *testing.T) {
	sem := "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n" +
		"1592655875          3   604          3     0     0     0     0          0 1796467133\n" +
		"         0          4   600          1    10    20     0     0          0 1796467133\n"
	gotSem, err := ParseSysVSem([]byte(sem))
	if err != nil {
		t.Fatal(err)
	}
	wantSem := []SysVSem{{Key: 1592655875, ID: 3, Perms: 0o604, Nsems: 3}, {ID: 4, Perms: 0o600, Nsems: 1, UID: 10, GID: 20}}
	if diff := cmp.Diff(wantSem, gotSem); diff != "" {
		t.Errorf("sem (-want +got):\n%s", diff)
	}
	msg := "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n" +
		"1592655876          1   620          12          2   100     0     0     0     0     0 1796467133          0 1796467133\n"
	gotMsg, err := ParseSysVMsg([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := []SysVMsg{{Key: 1592655876, ID: 1, Perms: 0o620, Cbytes: 12, Qnum: 2}}
	if diff := cmp.Diff(wantMsg, gotMsg); diff != "" {
		t.Errorf("msg (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "semid perms\n1 2\n", sem + "1 2 3\n", "       key      semid perms      nsems   uid   gid\n1 x 600 1 0 0\n"} {
		if _, err := ParseSysVSem([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseSysVTables(f *testing.F) {
	addSeeds(f, "sysvipc", "/proc/sysvipc/sem", "/proc/sysvipc/msg", "/proc/sysvipc/shm")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSysVSem(b)
		_, _ = ParseSysVMsg(b)
		_, _ = ParseSysVShm(b)
	})
}

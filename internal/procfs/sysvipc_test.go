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

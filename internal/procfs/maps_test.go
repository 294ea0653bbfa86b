package procfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseMaps(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Mapping
		wantErr string
	}{{
		name: "file",
		in:   "55828439f000-5582843a1000 r--p 00000000 fe:00 247026                     /usr/bin/cat\n",
		want: []Mapping{{Start: 0x55828439f000, End: 0x5582843a1000, Prot: ProtRead, Dev: unix.Mkdev(0xfe, 0),
			Inode: 247026, Path: "/usr/bin/cat", Kind: KindFile}},
	}, {
		name: "anonymous with trailing space",
		in:   "7f641a201000-7f641a223000 rw-p 00000000 00:00 0 \n",
		want: []Mapping{{Start: 0x7f641a201000, End: 0x7f641a223000, Prot: ProtRead | ProtWrite, Kind: KindAnon}},
	}, {
		name: "shared file at offset",
		in:   "7f641a469000-7f641a470000 r--s 0017c000 fe:00 325737                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
		want: []Mapping{{Start: 0x7f641a469000, End: 0x7f641a470000, Prot: ProtRead, Shared: true, Offset: 0x17c000,
			Dev: unix.Mkdev(0xfe, 0), Inode: 325737, Path: "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", Kind: KindFile}},
	}, {
		name: "deleted file with spaces and parentheses",
		in:   "7f5b25e11000-7f5b25e12000 r--p 00000000 fe:00 9977922                    /tmp/scratch/del me (x) (deleted)\n",
		want: []Mapping{{Start: 0x7f5b25e11000, End: 0x7f5b25e12000, Prot: ProtRead, Dev: unix.Mkdev(0xfe, 0),
			Inode: 9977922, Path: "/tmp/scratch/del me (x)", Deleted: true, Kind: KindFile}},
	}, {
		name: "trailing space in file name is kept",
		in:   "1000-2000 r--p 00000000 fe:00 5 /tmp/a \n",
		want: []Mapping{{Start: 0x1000, End: 0x2000, Prot: ProtRead, Dev: unix.Mkdev(0xfe, 0), Inode: 5, Path: "/tmp/a ", Kind: KindFile}},
	}, {
		name: "memfd and shared anonymous",
		in: "7f5b25e12000-7f5b25e13000 rw-s 00000000 00:01 3                          /memfd:my mem fd (deleted)\n" +
			"7f5b25e13000-7f5b25e14000 r--s 00000000 00:01 4                          /dev/zero (deleted)\n",
		want: []Mapping{
			{Start: 0x7f5b25e12000, End: 0x7f5b25e13000, Prot: ProtRead | ProtWrite, Shared: true, Dev: unix.Mkdev(0, 1),
				Inode: 3, Path: "/memfd:my mem fd", Deleted: true, Kind: KindFile},
			{Start: 0x7f5b25e13000, End: 0x7f5b25e14000, Prot: ProtRead, Shared: true, Dev: unix.Mkdev(0, 1),
				Inode: 4, Path: "/dev/zero", Deleted: true, Kind: KindFile},
		},
	}, {
		name: "special areas",
		in: "558285d91000-558285db2000 rw-p 00000000 00:00 0                          [heap]\n" +
			"7f641a473000-7f641a477000 r--p 00000000 00:00 0                          [vvar]\n" +
			"7f641a477000-7f641a479000 r--p 00000000 00:00 0                          [vvar_vclock]\n" +
			"7f641a479000-7f641a47b000 r-xp 00000000 00:00 0                          [vdso]\n" +
			"7ffd94b89000-7ffd94baa000 rw-p 00000000 00:00 0                          [stack]\n" +
			"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n" +
			"7000-8000 rw-p 00000000 00:00 0                          [anon:my name (deleted)]\n" +
			"8000-9000 rw-s 00000000 00:01 7                          [anon_shmem:x]\n" +
			"9000-a000 r--p 00000000 00:00 0                          [uprobes]\n" +
			"a000-b000 rw-s 00000000 00:0f 1038                       anon_inode:[io_uring]\n",
		want: []Mapping{
			{Start: 0x558285d91000, End: 0x558285db2000, Prot: ProtRead | ProtWrite, Path: "[heap]", Kind: KindHeap},
			{Start: 0x7f641a473000, End: 0x7f641a477000, Prot: ProtRead, Path: "[vvar]", Kind: KindVvar},
			{Start: 0x7f641a477000, End: 0x7f641a479000, Prot: ProtRead, Path: "[vvar_vclock]", Kind: KindVvarVclock},
			{Start: 0x7f641a479000, End: 0x7f641a47b000, Prot: ProtRead | ProtExec, Path: "[vdso]", Kind: KindVdso},
			{Start: 0x7ffd94b89000, End: 0x7ffd94baa000, Prot: ProtRead | ProtWrite, Path: "[stack]", Kind: KindStack},
			{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: ProtExec, Path: "[vsyscall]", Kind: KindVsyscall},
			{Start: 0x7000, End: 0x8000, Prot: ProtRead | ProtWrite, Path: "[anon:my name (deleted)]", Kind: KindAnon},
			{Start: 0x8000, End: 0x9000, Prot: ProtRead | ProtWrite, Shared: true, Dev: unix.Mkdev(0, 1), Inode: 7, Path: "[anon_shmem:x]", Kind: KindAnon},
			{Start: 0x9000, End: 0xa000, Prot: ProtRead, Path: "[uprobes]", Kind: KindOther},
			{Start: 0xa000, End: 0xb000, Prot: ProtRead | ProtWrite, Shared: true, Dev: unix.Mkdev(0, 0xf), Inode: 1038, Path: "anon_inode:[io_uring]", Kind: KindOther},
		},
	}, {
		name: "empty input",
		in:   "",
	}, {
		name: "big device numbers", in: "1000-2000 ---p 00000000 fff:fffff 1\n",
		want: []Mapping{{Start: 0x1000, End: 0x2000, Dev: unix.Mkdev(0xfff, 0xfffff), Inode: 1, Kind: KindAnon}},
	},
		{name: "too few fields", in: "1000-2000 r--p 00000000 fe:00\n", wantErr: "line 1: "},
		{name: "bad range", in: "1000 r--p 00000000 fe:00 1\n", wantErr: "missing '-'"},
		{name: "end before start", in: "2000-1000 r--p 00000000 fe:00 1\n", wantErr: "end before start"},
		{name: "bad start", in: "x000-2000 r--p 00000000 fe:00 1\n", wantErr: "start address"},
		{name: "bad perms", in: "1000-2000 rwz 00000000 fe:00 1\n", wantErr: "permissions"},
		{name: "bad perm char", in: "1000-2000 rwzp 00000000 fe:00 1\n", wantErr: "bad character"},
		{name: "bad share", in: "1000-2000 rwxq 00000000 fe:00 1\n", wantErr: "sharing flag"},
		{name: "bad offset", in: "1000-2000 rwxp 0000000g fe:00 1\n", wantErr: "offset"},
		{name: "bad device", in: "1000-2000 rwxp 00000000 fe00 1\n", wantErr: "device"},
		{name: "bad inode", in: "1000-2000 rwxp 00000000 fe:00 -1\n", wantErr: "inode"},
		{name: "second line bad", in: "1000-2000 rwxp 00000000 fe:00 1\nfoo\n", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMaps(strings.NewReader(tc.in))
			if !wantErrContaining(t, err, tc.wantErr) {
				if !strings.HasPrefix(err.Error(), "maps: ") {
					t.Errorf("error %q lacks the maps: prefix", err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseMaps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMapsTestdata(t *testing.T) {
	for name, b := range testdataFiles(t, "maps-") {
		t.Run(name, func(t *testing.T) {
			ms, err := ParseMaps(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if lines := bytes.Count(b, []byte{'\n'}); len(ms) != lines {
				t.Errorf("%d mappings from %d lines", len(ms), lines)
			}
			kinds := map[Kind]int{}
			for _, m := range ms {
				kinds[m.Kind]++
			}
			for _, k := range []Kind{KindFile, KindAnon, KindStack, KindVdso, KindVvar, KindVvarVclock, KindVsyscall} {
				if kinds[k] == 0 {
					t.Errorf("no %v mapping", k)
				}
			}
		})
	}
}

func TestReadMapsSelf(t *testing.T) {
	// A deleted file with an awkward name, mapped shared, must come back
	// with its name intact and Deleted set.
	path := filepath.Join(t.TempDir(), "odd name (1) ")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	if err := f.Truncate(int64(2 * ps)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), int64(ps), ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	os.Remove(path)
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}

	ms, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	addr := uint64(uintptr(unsafePointer(mem)))
	var got *Mapping
	for i := range ms {
		if ms[i].Start == addr {
			got = &ms[i]
		}
	}
	if got == nil {
		t.Fatalf("no mapping at %#x", addr)
	}
	want := Mapping{Start: addr, End: addr + uint64(ps), Prot: ProtRead | ProtWrite, Shared: true, Offset: uint64(ps),
		Dev: st.Dev, Inode: st.Ino, Path: path, Deleted: true, Kind: KindFile}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("mapping mismatch (-want +got):\n%s", diff)
	}

	if _, err := ReadMaps(-1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadMaps(-1) = %v", err)
	}
}

func TestKindString(t *testing.T) {
	if got := KindVvarVclock.String(); got != "vvar_vclock" {
		t.Errorf("String = %q", got)
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("String = %q", got)
	}
	if got := (ProtRead | ProtExec).String(); got != "r-x" {
		t.Errorf("Prot.String = %q", got)
	}
}

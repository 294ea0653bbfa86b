package procfs

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// addSeeds adds every testdata file with the prefix and, where given, the
// same file of this very process, so each corpus starts from real /proc
// output of this machine.
func addSeeds(f *testing.F, prefix string, live ...string) {
	for _, b := range testdataFiles(f, prefix) {
		f.Add(b)
	}
	for _, p := range live {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func formatMapping(m Mapping) string {
	perm := []byte(m.Prot.String() + "p")
	if m.Shared {
		perm[3] = 's'
	}
	path := m.Path
	if m.Deleted {
		path += deletedSuffix
	}
	return fmt.Sprintf("%08x-%08x %s %08x %02x:%02x %d                   %s",
		m.Start, m.End, perm, m.Offset, unix.Major(m.Dev), unix.Minor(m.Dev), m.Inode, path)
}

func FuzzParseMaps(f *testing.F) {
	addSeeds(f, "maps-", "/proc/self/maps")
	f.Add([]byte("1000-2000 rw-s 00000000 00:01 4 /dev/zero (deleted)\n1000-2000 r--p 0 fe:00 1 /a\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(bytes.NewReader(b))
		if err != nil {
			return
		}
		var lines []string
		for _, m := range ms {
			if m.End < m.Start || strings.HasPrefix(m.Kind.String(), "Kind(") {
				t.Fatalf("bad mapping %+v", m)
			}
			lines = append(lines, formatMapping(m))
		}
		again, err := ParseMaps(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if diff := cmp.Diff(ms, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseSmaps(f *testing.F) {
	addSeeds(f, "smaps-", "/proc/self/smaps")
	f.Add([]byte(smapsStack))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseSmaps(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, e := range es {
			if e.Fields == nil || e.End < e.Start {
				t.Fatalf("bad entry %+v", e)
			}
			if e.Size != e.Fields["Size"] || e.AnonHugePages != e.Fields["AnonHugePages"] {
				t.Fatalf("named fields disagree with Fields: %+v", e)
			}
		}
		// What the whole parse accepts, the flags-only one reads alike.
		fs, err := ParseSmapsFlags(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("ParseSmapsFlags refused what ParseSmaps took: %v", err)
		}
		if len(fs) != len(es) {
			t.Fatalf("ParseSmapsFlags: %d mappings, ParseSmaps %d", len(fs), len(es))
		}
		for i := range es {
			if diff := cmp.Diff(MappingFlags{Mapping: es[i].Mapping, VmFlags: es[i].VmFlags, Anonymous: es[i].Anonymous}, fs[i]); diff != "" {
				t.Fatalf("mapping %d (-ParseSmaps +ParseSmapsFlags):\n%s", i, diff)
			}
		}
	})
}

func FuzzParseSmapsFlags(f *testing.F) {
	addSeeds(f, "smaps-", "/proc/self/smaps")
	f.Add([]byte(smapsStack))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseSmapsFlags(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.End < m.Start {
				t.Fatalf("bad mapping %+v", m)
			}
		}
	})
}

// formatStat writes st back in stat's layout, relying on Stat's fields being
// declared in file order.
func formatStat(st Stat) string {
	var b strings.Builder
	// The state is the kernel's byte as is (%c would write a byte above
	// 0x7f as the two bytes of its code point).
	fmt.Fprintf(&b, "%d (%s) ", st.Pid, st.Comm)
	b.WriteByte(st.State)
	v := reflect.ValueOf(st)
	for i := 3; i < v.NumField(); i++ {
		fmt.Fprintf(&b, " %d", v.Field(i).Interface())
	}
	return b.String()
}

func FuzzParseStat(f *testing.F) {
	addSeeds(f, "stat-", "/proc/self/stat", "/proc/1/stat", "/proc/2/stat")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err != nil {
			return
		}
		// Comm may contain anything except that a ')' must not be followed
		// by text that parses, which a reparse of the formatted form checks.
		again, err := ParseStat([]byte(formatStat(st)))
		if err != nil {
			t.Fatalf("reparse of %q: %v", formatStat(st), err)
		}
		if diff := cmp.Diff(st, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	addSeeds(f, "status-", "/proc/self/status", "/proc/1/status", "/proc/2/status")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err != nil {
			return
		}
		for _, k := range []string{"Name", "State", "Tgid", "Pid"} {
			if _, ok := st.Fields[k]; !ok {
				t.Fatalf("parsed without %s", k)
			}
		}
	})
}

func FuzzParseFdInfo(f *testing.F) {
	addSeeds(f, "fdinfo-", "/proc/self/fdinfo/0", "/proc/self/fdinfo/1")
	f.Fuzz(func(t *testing.T, b []byte) {
		fi, err := ParseFdInfo(b)
		if err != nil {
			return
		}
		for _, w := range fi.Inotify {
			if w.Handle != nil && w.Handle.Handle == nil {
				t.Fatalf("handle without bytes: %+v", w)
			}
		}
	})
}

func FuzzParseAuxv(f *testing.F) {
	addSeeds(f, "auxv-", "/proc/self/auxv")
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseAuxv(b)
		if err != nil {
			return
		}
		if 16*(len(es)+1) > len(b) {
			t.Fatalf("%d entries from %d bytes", len(es), len(b))
		}
		for _, e := range es {
			if e.Type == atNull {
				t.Fatal("AT_NULL returned as an entry")
			}
		}
	})
}

func FuzzParseFdTarget(f *testing.F) {
	for _, line := range strings.Split(string(readTestdata(f, "fdtargets.txt")), "\n") {
		f.Add(line)
	}
	if fds, err := Fds(os.Getpid()); err == nil {
		for _, fd := range fds {
			if s, err := FdTarget(os.Getpid(), fd); err == nil {
				f.Add(s)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseFdTarget(s)
		if strings.HasPrefix(l.Kind.String(), "FdKind(") {
			t.Fatalf("bad kind %v", l.Kind)
		}
		if !strings.Contains(s, l.Path) {
			t.Fatalf("Path %q not taken from %q", l.Path, s)
		}
		if l.Kind == FdFile && !strings.HasPrefix(l.Path, "/") {
			t.Fatalf("file path %q is not absolute", l.Path)
		}
	})
}

func FuzzParseTimers(f *testing.F) {
	addSeeds(f, "timers", "/proc/self/timers")
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTimers(b)
		if err != nil {
			return
		}
		for _, tm := range ts {
			if tm.Notify == "" {
				t.Fatalf("empty notify method from %q", b)
			}
		}
	})
}

// escapeMount applies mountinfo's escaping of space, tab, newline and backslash.
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzParseMountinfo(f *testing.F) {
	addSeeds(f, "mountinfo", "/proc/self/mountinfo")
	f.Add([]byte(`36 35 98:0 /mnt\040a /mnt/b\011c\134d rw,noatime master:1 shared:7 - ext3 /dev/root\040x rw,errors=continue` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMountinfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&out, "%d %d %d:%d %s %s %s", m.ID, m.ParentID, unix.Major(m.Dev), unix.Minor(m.Dev),
				escapeMount(m.Root), escapeMount(m.MountPoint), escapeMount(m.Options))
			for _, o := range m.Optional {
				fmt.Fprintf(&out, " %s", escapeMount(o))
			}
			fmt.Fprintf(&out, " - %s %s %s\n", escapeMount(m.FSType), escapeMount(m.Source), escapeMount(m.SuperOptions))
		}
		again, err := ParseMountinfo(strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("reparse of %q: %v", out.String(), err)
		}
		if diff := cmp.Diff(ms, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
		for _, m := range ms {
			p, err := m.Propagation()
			if err == nil && (p.Shared < 0 || p.Master < 0 || p.PropagateFrom < 0) {
				t.Fatalf("mount %d: negative peer group in %+v", m.ID, p)
			}
		}
	})
}

func FuzzParseChildren(f *testing.F) {
	f.Add([]byte("123 456 "))
	if b, err := os.ReadFile("/proc/1/task/1/children"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseChildren(b)
		if err == nil && len(ids) != len(bytes.Fields(b)) {
			t.Fatalf("%d ids from %q", len(ids), b)
		}
	})
}

func FuzzParsePersonality(f *testing.F) {
	f.Add([]byte("00000000\n"))
	if b, err := os.ReadFile("/proc/self/personality"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParsePersonality(b)
	})
}

func FuzzParseSysVShm(f *testing.F) {
	addSeeds(f, "sysvipc-shm", "/proc/sysvipc/shm")
	f.Fuzz(func(t *testing.T, b []byte) {
		segs, err := ParseSysVShm(b)
		if err != nil {
			return
		}
		for _, s := range segs {
			if s.Nattch < 0 {
				t.Fatalf("negative nattch from %q", b)
			}
		}
	})
}

func FuzzParseMemAvailable(f *testing.F) {
	f.Add([]byte("MemTotal: 1 kB\nMemAvailable:   22871040 kB\n"))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseMemAvailable(b); err == nil && (n < 0 || !bytes.Contains(b, []byte("MemAvailable:"))) {
			t.Fatalf("%d from %q", n, b)
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	f.Add([]byte("running\n"))
	f.Add([]byte("-1 0x7ffd713081c8 0x7fa98bccd2ad\n"))
	f.Add([]byte("202 0x7f1 0x80 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7fa9\n"))
	if b, err := os.ReadFile("/proc/self/syscall"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok, err := ParseSyscall(b)
		if (err != nil || !ok) && got != (Blocked{}) {
			t.Fatalf("%+v (ok %v, err %v) from %q", got, ok, err, b)
		}
	})
}

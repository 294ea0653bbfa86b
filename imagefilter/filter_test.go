package imagefilter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// builder writes a test image and remembers each record by name.
type builder struct {
	t     testing.TB
	buf   bytes.Buffer
	w     *ckpt.Writer
	names []string // record i after the header is names[i]
	refs  map[string]ckpt.Objref
}

func newBuilder(t testing.TB) *builder {
	t.Helper()
	b := &builder{t: t, refs: map[string]ckpt.Objref{}}
	hdr := ckpt.Header{Arch: "amd64", KernelRelease: "6.18.44", PageSize: 4096, Created: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), Writer: "crsub test", XStateSize: 2432, XFeatures: 0xe7}
	w, err := ckpt.NewWriter(&b.buf, hdr)
	if err != nil {
		t.Fatal(err)
	}
	b.w = w
	return b
}

// add writes a record named name; it defines an objref when define is set,
// depends on the named records deps, and carries payload if not nil.
func (b *builder) add(name string, typ ckpt.Type, define bool, deps []string, meta any, payload []byte) ckpt.Objref {
	b.t.Helper()
	var ref ckpt.Objref
	if define {
		ref = b.w.NewObjref()
		b.refs[name] = ref
	}
	var refs []ckpt.Objref
	for _, d := range deps {
		r, ok := b.refs[d]
		if !ok {
			b.t.Fatalf("record %s depends on unknown %s", name, d)
		}
		refs = append(refs, r)
	}
	err := b.w.WriteWithPayload(typ, ref, refs, meta, int64(len(payload)), func(w io.Writer) error {
		_, err := w.Write(payload)
		return err
	})
	if err != nil {
		b.t.Fatalf("writing %s: %v", name, err)
	}
	b.names = append(b.names, name)
	return ref
}

func (b *builder) done() []byte {
	b.t.Helper()
	if err := b.w.Close(); err != nil {
		b.t.Fatal(err)
	}
	return bytes.Clone(b.buf.Bytes())
}

const rootPid = 4242

// Files of the realistic image, by name, for expectations.
var (
	pipeRead  = ckpt.File{Kind: ckpt.FilePipe, Flags: unix.O_RDONLY, Mode: unix.S_IFIFO | 0o600, PipeEnd: "read", Identity: ckpt.FileIdentity{Inode: 777}}
	pipeWrite = ckpt.File{Kind: ckpt.FilePipe, Flags: unix.O_WRONLY | unix.O_NONBLOCK, Mode: unix.S_IFIFO | 0o600, PipeEnd: "write", Identity: ckpt.FileIdentity{Inode: 777}}
	logFile   = ckpt.File{Kind: ckpt.FileRegular, Path: "/var/log/app.log", Flags: unix.O_WRONLY | unix.O_APPEND, Pos: 120, Mode: unix.S_IFREG | 0o640, Identity: ckpt.FileIdentity{Path: "/var/log/app.log", Dev: 2049, Inode: 99, Size: 120, Mtime: 1}}
	tty       = ckpt.File{Kind: ckpt.FileCharDev, Path: "/dev/pts/3", Flags: unix.O_RDWR, Mode: unix.S_IFCHR | 0o620, Rdev: 0x8803, External: true, ExternalReason: "terminal /dev/pts/3"}
	deleted   = ckpt.File{Kind: ckpt.FileRegular, Path: "/tmp/scratch (deleted)", Flags: unix.O_RDWR, Pos: 16, Mode: unix.S_IFREG | 0o600, Deleted: true}
	epollFile = ckpt.File{Kind: ckpt.FileEpoll, Flags: unix.O_RDWR, Identity: ckpt.FileIdentity{Inode: 5}}
)

// realisticImage is a one-process image laid out as checkpoints write it:
// task state, memory, then the fd table (each file just before its first fd,
// a pipe just before its first end), epoll watches, and a record of a type
// this version does not know.
func realisticImage(t testing.TB) (*builder, []byte) {
	t.Helper()
	return realisticImageWithPages(t, bytes.Repeat([]byte{0xab}, 2*4096))
}

// realisticImageWithPages lets the fuzz target seed with a small image: the
// fuzzer minimizes every interesting input, which takes long for large ones.
func realisticImageWithPages(t testing.TB, pages []byte) (*builder, []byte) {
	t.Helper()
	b := newBuilder(t)
	b.add("tree", ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: rootPid, Pgid: rootPid, Sid: 100, Tids: []int{rootPid}, Comm: "server"}}}, nil)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: rootPid, Comm: "server", Cwd: "/srv", Root: "/", Umask: 0o27}, nil)
	b.add("thread", ckpt.TypeThread, false, []string{"process"}, &ckpt.Thread{Pid: rootPid, Tid: rootPid, Regs: make([]uint64, 27), XState: []byte{1, 2, 3}}, nil)
	b.add("signals", ckpt.TypeSignals, false, []string{"process"}, &ckpt.Signals{Pid: rootPid, Actions: []ckpt.SigAction{{Signo: 10, Handler: 0x401000}}}, nil)
	b.add("mm", ckpt.TypeMM, true, []string{"process"}, &ckpt.MM{Pid: rootPid, StartBrk: 0x1000000, Brk: 0x1002000, Exe: ckpt.FileIdentity{Path: "/usr/bin/server"}}, nil)
	b.add("vma", ckpt.TypeVMA, false, []string{"mm"}, &ckpt.VMA{Pid: rootPid, Start: 0x1000000, End: 0x1002000, Prot: 3, Flags: 0x22, Kind: ckpt.VMAHeap}, nil)
	b.add("pages", ckpt.TypePages, false, []string{"mm"}, &ckpt.Pages{Pid: rootPid, VMAStart: 0x1000000, Runs: []ckpt.PageRun{{Index: 0, Count: 2}}}, pages)
	b.add("pipe", ckpt.TypePipe, true, nil, &ckpt.Pipe{Inode: 777, Size: 65536}, []byte("buffered bytes"))
	b.add("pipe-read", ckpt.TypeFile, true, []string{"pipe"}, &pipeRead, nil)
	b.add("fd0", ckpt.TypeFd, false, []string{"process", "pipe-read"}, &ckpt.Fd{Pid: rootPid, Fd: 0, File: b.refs["pipe-read"]}, nil)
	b.add("log", ckpt.TypeFile, true, nil, &logFile, nil)
	b.add("fd1", ckpt.TypeFd, false, []string{"process", "log"}, &ckpt.Fd{Pid: rootPid, Fd: 1, File: b.refs["log"]}, nil)
	b.add("fd2", ckpt.TypeFd, false, []string{"process", "log"}, &ckpt.Fd{Pid: rootPid, Fd: 2, File: b.refs["log"]}, nil)
	b.add("tty", ckpt.TypeFile, true, nil, &tty, nil)
	b.add("fd3", ckpt.TypeFd, false, []string{"process", "tty"}, &ckpt.Fd{Pid: rootPid, Fd: 3, File: b.refs["tty"]}, nil)
	b.add("pipe-write", ckpt.TypeFile, true, []string{"pipe"}, &pipeWrite, nil)
	b.add("fd4", ckpt.TypeFd, false, []string{"process", "pipe-write"}, &ckpt.Fd{Pid: rootPid, Fd: 4, Cloexec: true, File: b.refs["pipe-write"]}, nil)
	b.add("deleted", ckpt.TypeFile, true, nil, &deleted, []byte("scratch contents"))
	b.add("fd5", ckpt.TypeFd, false, []string{"process", "deleted"}, &ckpt.Fd{Pid: rootPid, Fd: 5, File: b.refs["deleted"]}, nil)
	b.add("epoll", ckpt.TypeFile, true, nil, &epollFile, nil)
	b.add("fd6", ckpt.TypeFd, false, []string{"process", "epoll"}, &ckpt.Fd{Pid: rootPid, Fd: 6, Cloexec: true, File: b.refs["epoll"]}, nil)
	b.add("watch", ckpt.TypeEpollWatch, false, []string{"epoll", "pipe-read"}, &ckpt.EpollWatch{Pid: rootPid, Epoll: b.refs["epoll"], Target: b.refs["pipe-read"], Fd: 0, Events: unix.EPOLLIN, Data: 7}, nil)
	b.add("future", ckpt.Type(0x7777), false, []string{"process"}, json.RawMessage(`{"future":true}`), []byte("opaque"))
	return b, b.done()
}

// record is a record as read back, comparable with cmp.
type record struct {
	Name    string
	Type    ckpt.Type
	Objref  ckpt.Objref
	Deps    []ckpt.Objref
	Meta    string
	Payload string
}

// readImage reads an image to its end, failing the test on any error.
func readImage(t testing.TB, img []byte) []record {
	t.Helper()
	recs, err := readRecords(img)
	if err != nil {
		t.Fatalf("reading the image back: %v", err)
	}
	return recs
}

func readRecords(img []byte) ([]record, error) {
	r, err := ckpt.NewReader(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	var out []record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		p, err := io.ReadAll(rec.Payload())
		if err != nil {
			return nil, err
		}
		out = append(out, record{Type: rec.Type, Objref: rec.Objref, Deps: rec.Deps, Meta: string(rec.Meta), Payload: string(p)})
	}
}

// named reads the builder's image and names each record.
func (b *builder) named(img []byte) []record {
	recs := readImage(b.t, img)
	for i := range recs {
		recs[i].Name = b.names[i]
	}
	return recs
}

// nameOutput names the output's records after the input's by objref or,
// for records without one, by metadata.
func nameOutput(in, out []record) {
	for i := range out {
		for _, r := range in {
			if (out[i].Objref != 0 && r.Objref == out[i].Objref) || (out[i].Objref == 0 && r.Objref == 0 && r.Type == out[i].Type && r.Meta == out[i].Meta) {
				out[i].Name = r.Name
				break
			}
		}
	}
}

func without(recs []record, names ...string) []record {
	var out []record
	for _, r := range recs {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+r.Name+" ") {
			out = append(out, r)
		}
	}
	return out
}

func moveBefore(recs []record, name, before string) []record {
	var moving record
	var rest []record
	for _, r := range recs {
		if r.Name == name {
			moving = r
		} else {
			rest = append(rest, r)
		}
	}
	var out []record
	for _, r := range rest {
		if r.Name == before {
			out = append(out, moving)
		}
		out = append(out, r)
	}
	return out
}

// asSupplied is how the filter rewrites a replaced file's record.
func asSupplied(t *testing.T, recs []record, name string, f ckpt.File) {
	t.Helper()
	f.Supplied, f.External, f.ExternalReason = true, false, ""
	meta, err := json.Marshal(&f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if recs[i].Name == name {
			recs[i].Meta, recs[i].Deps, recs[i].Payload = string(meta), nil, ""
			return
		}
	}
	t.Fatalf("no record %s", name)
}

func runFilter(t *testing.T, img []byte, rules ...Rule) ([]byte, *Report, error) {
	t.Helper()
	var out bytes.Buffer
	opts := DefaultOptions()
	opts.TempDir = t.TempDir()
	rep, err := Filter(&out, bytes.NewReader(img), rules, opts)
	return out.Bytes(), rep, err
}

func TestNoRulesIsIdentity(t *testing.T) {
	_, img := realisticImage(t)
	out, rep, err := runFilter(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img, out) {
		t.Errorf("output differs from the input: %d bytes in, %d out", len(img), len(out))
	}
	if diff := cmp.Diff(&Report{}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func drop(pid, fd int) Rule    { return Rule{Pid: pid, Fd: fd, Action: Drop} }
func replace(pid, fd int) Rule { return Rule{Pid: pid, Fd: fd, Action: Replace} }

func TestRules(t *testing.T) {
	b, img := realisticImage(t)
	in := b.named(img)
	for _, tc := range []struct {
		name  string
		rules []Rule
		// want is the input with removed records and supplied files.
		removed  []string
		supplied map[string]ckpt.File
		// moved are held records written later than in the input: just
		// before the named record, their first surviving dependent.
		moved  map[string]string
		report Report
	}{
		{
			name:    "drop the deleted file's fd",
			rules:   []Rule{drop(0, 5)},
			removed: []string{"fd5", "deleted"},
			report:  Report{Dropped: []Rule{drop(rootPid, 5)}, RemovedRecords: 2, RemovedBytes: int64(len("scratch contents"))},
		},
		{
			name:     "replace the deleted file",
			rules:    []Rule{replace(rootPid, 5)},
			supplied: map[string]ckpt.File{"deleted": deleted},
			report:   Report{Replaced: []Rule{replace(rootPid, 5)}, RemovedBytes: int64(len("scratch contents")), Supplied: 1},
		},
		{
			name:     "replace both pipe ends",
			rules:    []Rule{replace(0, 0), replace(0, 4)},
			removed:  []string{"pipe"},
			supplied: map[string]ckpt.File{"pipe-read": pipeRead, "pipe-write": pipeWrite},
			report:   Report{Replaced: []Rule{replace(rootPid, 0), replace(rootPid, 4)}, RemovedRecords: 1, RemovedBytes: int64(len("buffered bytes")), Supplied: 2},
		},
		{
			name:     "replace one pipe end: the pipe stays for the other",
			rules:    []Rule{replace(0, 4)},
			supplied: map[string]ckpt.File{"pipe-write": pipeWrite},
			report:   Report{Replaced: []Rule{replace(rootPid, 4)}, Supplied: 1},
		},
		{
			name:    "drop both pipe ends: the pipe and the watch on its read end go",
			rules:   []Rule{drop(0, 0), drop(0, 4)},
			removed: []string{"pipe", "pipe-read", "fd0", "pipe-write", "fd4", "watch"},
			report:  Report{Dropped: []Rule{drop(rootPid, 0), drop(rootPid, 4)}, RemovedRecords: 6, RemovedBytes: int64(len("buffered bytes"))},
		},
		{
			name:     "drop and replace a pipe's ends",
			rules:    []Rule{drop(0, 0), replace(0, 4)},
			removed:  []string{"pipe", "pipe-read", "fd0", "watch"},
			supplied: map[string]ckpt.File{"pipe-write": pipeWrite},
			report:   Report{Dropped: []Rule{drop(rootPid, 0)}, Replaced: []Rule{replace(rootPid, 4)}, RemovedRecords: 4, RemovedBytes: int64(len("buffered bytes")), Supplied: 1},
		},
		{
			name:     "replace both fds of a shared file: supplied once",
			rules:    []Rule{replace(0, 1), replace(0, 2)},
			supplied: map[string]ckpt.File{"log": logFile},
			report:   Report{Replaced: []Rule{replace(rootPid, 1), replace(rootPid, 2)}, Supplied: 1},
		},
		{
			name:     "drop one fd of a shared file, replace the other",
			rules:    []Rule{drop(0, 1), replace(0, 2)},
			removed:  []string{"fd1"},
			supplied: map[string]ckpt.File{"log": logFile},
			report:   Report{Dropped: []Rule{drop(rootPid, 1)}, Replaced: []Rule{replace(rootPid, 2)}, RemovedRecords: 1, Supplied: 1},
		},
		{
			name:    "drop both fds of a shared file",
			rules:   []Rule{drop(0, 2), drop(0, 1)},
			removed: []string{"log", "fd1", "fd2"},
			report:  Report{Dropped: []Rule{drop(rootPid, 2), drop(rootPid, 1)}, RemovedRecords: 3},
		},
		{
			name:     "replace an external terminal: no longer external",
			rules:    []Rule{replace(0, 3)},
			supplied: map[string]ckpt.File{"tty": tty},
			report:   Report{Replaced: []Rule{replace(rootPid, 3)}, Supplied: 1},
		},
		{
			name:     "replace a watched file: the watch follows the substitute",
			rules:    []Rule{replace(0, 0)},
			supplied: map[string]ckpt.File{"pipe-read": pipeRead},
			moved:    map[string]string{"pipe": "pipe-write"},
			report:   Report{Replaced: []Rule{replace(rootPid, 0)}, Supplied: 1},
		},
		{
			name:    "drop an epoll instance: its watches go",
			rules:   []Rule{drop(0, 6)},
			removed: []string{"epoll", "fd6", "watch"},
			report:  Report{Dropped: []Rule{drop(rootPid, 6)}, RemovedRecords: 3},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := runFilter(t, img, tc.rules...)
			if err != nil {
				t.Fatal(err)
			}
			got := readImage(t, out)
			nameOutput(in, got)
			want := without(in, tc.removed...)
			for name, f := range tc.supplied {
				asSupplied(t, want, name, f)
			}
			for name, before := range tc.moved {
				want = moveBefore(want, name, before)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(&tc.report, rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuleErrors(t *testing.T) {
	_, img := realisticImage(t)
	for _, tc := range []struct {
		name   string
		rules  []Rule
		want   string // the whole message: each fact said once
		rule   *RuleError
		target error
	}{
		{"replace one fd of a shared file", []Rule{replace(0, 1)},
			"record 13 (fd) at offset 10408: rule replace fd 1 of pid 4242: its open file is shared with fd 2: add a rule for fd 2 too",
			&RuleError{Rule: replace(0, 1), Pid: rootPid}, ErrShared},
		{"the other fd of a shared file", []Rule{replace(0, 2)},
			"record 13 (fd) at offset 10408: rule replace fd 2 of pid 4242: its open file is shared with fd 1: add a rule for fd 1 too",
			&RuleError{Rule: replace(0, 2), Pid: rootPid}, ErrShared},
		{"drop one fd of a shared file", []Rule{drop(rootPid, 1)},
			"record 13 (fd) at offset 10408: rule drop fd 1 of pid 4242: its open file is shared with fd 2: add a rule for fd 2 too",
			&RuleError{Rule: drop(rootPid, 1), Pid: rootPid}, ErrShared},
		{"no such fd", []Rule{drop(0, 9)},
			"rule drop fd 9 of pid 4242: the image has no such fd",
			&RuleError{Rule: drop(0, 9), Pid: rootPid}, ErrNoMatch},
		{"no such process", []Rule{replace(77, 1)},
			"rule replace fd 1 of pid 77: the image has no such process",
			&RuleError{Rule: replace(77, 1), Pid: 77}, ErrNoMatch},
		{"one of several rules matches nothing", []Rule{drop(0, 5), replace(0, 8)},
			"rule replace fd 8 of pid 4242: the image has no such fd",
			&RuleError{Rule: replace(0, 8), Pid: rootPid}, ErrNoMatch},
		{"two rules for one fd", []Rule{drop(0, 5), replace(rootPid, 5)},
			"two rules for fd 5 of pid 4242: replace and drop", nil, nil},
		{"no action", []Rule{{Fd: 5}}, "rule for fd 5: unknown action 0", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := runFilter(t, img, tc.rules...)
			if err == nil {
				t.Fatalf("no error; report %+v", rep)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if tc.rule != nil {
				var re *RuleError
				if !errors.Is(err, tc.target) || !errors.As(err, &re) {
					t.Fatalf("error %q: want a RuleError wrapping %v", err, tc.target)
				}
				if diff := cmp.Diff(tc.rule, re, cmpopts.IgnoreFields(RuleError{}, "Err")); diff != "" {
					t.Errorf("RuleError (-want +got):\n%s", diff)
				}
			}
			// What was written must never pass for an image.
			if _, err := readRecords(out); err == nil && len(out) > 0 {
				t.Errorf("a failed filter wrote a readable image")
			}
		})
	}
}

func TestSharedErrorFields(t *testing.T) {
	_, img := realisticImage(t)
	_, _, err := runFilter(t, img, replace(0, 1))
	var shared *SharedError
	if !errors.As(err, &shared) {
		t.Fatalf("got %v, want a SharedError", err)
	}
	want := &SharedError{Pid: rootPid, Fd: 1, Others: []ProcessFd{{Pid: rootPid, Fd: 2}}}
	if diff := cmp.Diff(want, shared); diff != "" {
		t.Errorf("SharedError (-want +got):\n%s", diff)
	}
}

// A failed filter ends its output with an error record, so that a restart
// reading it through a pipe says why.
func TestFailureIsRecorded(t *testing.T) {
	_, img := realisticImage(t)
	out, _, err := runFilter(t, img, drop(0, 9))
	if err == nil {
		t.Fatal("no error")
	}
	_, rerr := readRecords(out)
	var ce *ckpt.CorruptError
	if rerr == nil || errors.As(rerr, &ce) || !strings.HasSuffix(rerr.Error(), err.Error()) {
		t.Errorf("reading the output: %v, want the filter's error", rerr)
	}
}

// chainImage has a dependency chain through record types this version does
// not know: A (a file) ← B (an object of an unknown type) ← C, plus unknown
// records that depend on nothing removed, one of them an object nothing
// depends on.
func chainImage(t testing.TB) (*builder, []byte) {
	b := newBuilder(t)
	b.add("tree", ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 7, Tids: []int{7}, Comm: "c"}, {Pid: 8, Ppid: 7, Tids: []int{8}, Comm: "child"}}}, nil)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: 7}, nil)
	b.add("child", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: 8}, nil)
	b.add("A", ckpt.TypeFile, true, nil, &ckpt.File{Kind: ckpt.FileRegular, Path: "/a"}, nil)
	b.add("fdA", ckpt.TypeFd, false, []string{"process", "A"}, &ckpt.Fd{Pid: 7, Fd: 7, File: b.refs["A"]}, nil)
	b.add("lone", ckpt.Type(0x7003), true, nil, json.RawMessage(`{"lone":1}`), []byte("kept"))
	b.add("B", ckpt.Type(0x7001), true, []string{"A"}, json.RawMessage(`{"b":1}`), []byte("bee"))
	b.add("C", ckpt.Type(0x7002), false, []string{"B"}, json.RawMessage(`{"c":1}`), nil)
	b.add("D", ckpt.Type(0x7004), false, []string{"process", "lone"}, json.RawMessage(`{"d":1}`), nil)
	b.add("shared", ckpt.TypeFile, true, nil, &ckpt.File{Kind: ckpt.FileRegular, Path: "/shared"}, nil)
	b.add("fd3", ckpt.TypeFd, false, []string{"process", "shared"}, &ckpt.Fd{Pid: 7, Fd: 3, File: b.refs["shared"]}, nil)
	b.add("child-fd3", ckpt.TypeFd, false, []string{"child", "shared"}, &ckpt.Fd{Pid: 8, Fd: 3, File: b.refs["shared"]}, nil)
	b.add("E", ckpt.Type(0x7005), false, []string{"process"}, json.RawMessage(`{"e":1}`), nil)
	return b, b.done()
}

func TestTransitiveRemoval(t *testing.T) {
	b, img := chainImage(t)
	in := b.named(img)
	out, rep, err := runFilter(t, img, drop(0, 7))
	if err != nil {
		t.Fatal(err)
	}
	got := readImage(t, out)
	nameOutput(in, got)
	if diff := cmp.Diff(without(in, "A", "fdA", "B", "C"), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if rep.RemovedRecords != 4 || rep.RemovedBytes != 3 {
		t.Errorf("report %+v, want 4 records and 3 bytes removed", rep)
	}
}

func TestSharedAcrossProcesses(t *testing.T) {
	b, img := chainImage(t)
	_, _, err := runFilter(t, img, replace(0, 3))
	var shared *SharedError
	if !errors.As(err, &shared) || !cmp.Equal(shared, &SharedError{Pid: 7, Fd: 3, Others: []ProcessFd{{Pid: 8, Fd: 3}}}) {
		t.Errorf("got %v, want fd 3 of pid 7 shared with fd 3 of pid 8", err)
	} else if want := "its open file is shared with fd 3 of pid 8: add a rule for fd 3 of pid 8 too"; shared.Error() != want {
		t.Errorf("SharedError says %q, want %q", shared, want)
	}
	out, _, err := runFilter(t, img, replace(0, 3), replace(8, 3))
	if err != nil {
		t.Fatal(err)
	}
	in := b.named(img)
	got := readImage(t, out)
	nameOutput(in, got)
	want := without(in)
	asSupplied(t, want, "shared", ckpt.File{Kind: ckpt.FileRegular, Path: "/shared"})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// A record that depends on a file before the fd table names it keeps the
// file whole; replacing the file afterwards would leave that record
// describing a file the image no longer has, so it is refused.
func TestFilePinnedBeforeItsFd(t *testing.T) {
	b := newBuilder(t)
	b.add("tree", ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 7, Tids: []int{7}}}}, nil)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: 7}, nil)
	b.add("A", ckpt.TypeFile, true, nil, &ckpt.File{Kind: ckpt.FileRegular, Path: "/a"}, []byte("contents"))
	b.add("early", ckpt.Type(0x7001), false, []string{"A"}, json.RawMessage(`{}`), nil)
	b.add("fd", ckpt.TypeFd, false, []string{"process", "A"}, &ckpt.Fd{Pid: 7, Fd: 1, File: b.refs["A"]}, nil)
	img := b.done()
	_, _, err := runFilter(t, img, replace(0, 1))
	if err == nil || !strings.Contains(err.Error(), "already written whole, for record 4 (type-0x7001)") {
		t.Errorf("got %v", err)
	}
	// Dropping the fd is fine: the file stays for the record that needs it.
	out, rep, err := runFilter(t, img, drop(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	in := b.named(img)
	got := readImage(t, out)
	nameOutput(in, got)
	if diff := cmp.Diff(without(in, "fd"), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if rep.RemovedRecords != 1 {
		t.Errorf("report %+v", rep)
	}
}

// Metadata from a newer writer keeps the fields this version does not know.
func TestSuppliedMetaKeepsUnknownFields(t *testing.T) {
	got, err := suppliedMeta([]byte(`{"kind":"socket","flags":2050,"external":true,"external_reason":"x","hologram":{"depth":3}}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"flags":2050,"hologram":{"depth":3},"kind":"socket","supplied":true}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []string{`null`, `[1]`, `"x"`, `{`} {
		if _, err := suppliedMeta([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// An image of a newer minor version: its header is re-encoded, which is
// reported, and the output is still a valid image.
func TestNewerMinorVersion(t *testing.T) {
	_, img := realisticImage(t)
	newer := bytes.Clone(img)
	binary.LittleEndian.PutUint16(newer[10:], ckpt.MinorVersion+1)
	out, rep, err := runFilter(t, newer)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HeaderRewritten {
		t.Error("HeaderRewritten not reported")
	}
	readImage(t, out)
}

func TestFdBeforeTree(t *testing.T) {
	b := newBuilder(t)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: 7}, nil)
	b.add("A", ckpt.TypeFile, true, nil, &ckpt.File{Kind: ckpt.FileRegular, Path: "/a"}, nil)
	b.add("fd", ckpt.TypeFd, false, []string{"process", "A"}, &ckpt.Fd{Pid: 7, Fd: 1, File: b.refs["A"]}, nil)
	img := b.done()
	if _, _, err := runFilter(t, img, drop(0, 1)); err == nil || !strings.Contains(err.Error(), "record 3 (fd) at offset") {
		t.Errorf("got %v", err)
	}
	if _, _, err := runFilter(t, img, drop(0, 2)); err == nil || !strings.Contains(err.Error(), "before the task tree") {
		t.Errorf("got %v", err)
	}
	if _, _, err := runFilter(t, img, drop(7, 1)); err != nil {
		t.Errorf("a rule with a pid: %v", err)
	}
}

func TestCorruptInputNamesRecord(t *testing.T) {
	_, img := realisticImage(t)
	bad := bytes.Clone(img)
	bad[bytes.Index(bad, []byte("buffered bytes"))] ^= 1
	_, _, err := runFilter(t, bad, drop(0, 5))
	var ce *ckpt.CorruptError
	if !errors.As(err, &ce) || ce.Type != ckpt.TypePipe || !strings.Contains(err.Error(), "record 8 (pipe)") {
		t.Errorf("got %v, want a CorruptError naming record 8 (pipe)", err)
	}
}

// Held payloads wait on disk: filtering an image with a large held pipe
// buffer allocates far less than the buffer.
func TestHeldPayloadIsNotInMemory(t *testing.T) {
	const size = 32 << 20
	b := newBuilder(t)
	b.add("tree", ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 7, Tids: []int{7}}}}, nil)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: 7}, nil)
	b.add("pipe", ckpt.TypePipe, true, nil, &ckpt.Pipe{Inode: 1}, bytes.Repeat([]byte("x"), size))
	b.add("read", ckpt.TypeFile, true, []string{"pipe"}, &ckpt.File{Kind: ckpt.FilePipe, PipeEnd: "read"}, nil)
	b.add("fd0", ckpt.TypeFd, false, []string{"process", "read"}, &ckpt.Fd{Pid: 7, Fd: 0, File: b.refs["read"]}, nil)
	b.add("write", ckpt.TypeFile, true, []string{"pipe"}, &ckpt.File{Kind: ckpt.FilePipe, PipeEnd: "write", Flags: os.O_WRONLY}, nil)
	b.add("fd1", ckpt.TypeFd, false, []string{"process", "write"}, &ckpt.Fd{Pid: 7, Fd: 1, File: b.refs["write"]}, nil)
	img := b.done()
	for _, rules := range [][]Rule{{replace(0, 1)}, {replace(0, 0), drop(0, 1)}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		opts := DefaultOptions()
		opts.TempDir = t.TempDir()
		rep, err := Filter(io.Discard, bytes.NewReader(img), rules, opts)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Errorf("rules %v: filtering allocated %d bytes for a %d-byte payload", rules, grew, size)
		}
		if len(rules) == 2 && rep.RemovedBytes != size {
			t.Errorf("rules %v: report %+v", rules, rep)
		}
		entries, _ := os.ReadDir(opts.TempDir)
		if len(entries) != 0 {
			t.Errorf("the temporary directory holds %d entries", len(entries))
		}
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rule
		err  bool
	}{
		{"7", Rule{Fd: 7, Action: Drop}, false},
		{"0", Rule{Fd: 0, Action: Drop}, false},
		{"1234:7", Rule{Pid: 1234, Fd: 7, Action: Drop}, false},
		{"", Rule{}, true},
		{"x", Rule{}, true},
		{"-1", Rule{}, true},
		{"0:1", Rule{}, true},
		{"12:", Rule{}, true},
		{":3", Rule{}, true},
		{"1:2:3", Rule{}, true},
	} {
		got, err := ParseRule(tc.in, Drop)
		if (err != nil) != tc.err {
			t.Errorf("ParseRule(%q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseRule(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	if r, _ := ParseRule("9:1", Replace); r.String() != "replace fd 1 of pid 9" {
		t.Errorf("String: %q", r)
	}
}

// FuzzFilter feeds damaged images and arbitrary rules: the filter must not
// panic, whatever it writes without error must read back to its end, every
// rule it reports applied must show in the output, and without rules the
// output must be the input.
func FuzzFilter(f *testing.F) {
	_, img := realisticImageWithPages(f, []byte("pages"))
	_, chain := chainImage(f)
	f.Add(img, []byte{})
	f.Add(img, []byte{1, 0, 0, 1, 0, 4})
	f.Add(img, []byte{0, 0, 5, 0, 0, 6})
	f.Add(img, []byte{1, 0, 1, 0, 0, 2})
	f.Add(chain, []byte{0, 0, 7})
	f.Add(chain, []byte{1, 0, 3, 1, 2, 3})
	f.Add(img[:len(img)/2], []byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte, ruleBytes []byte) {
		var rules []Rule
		pids := []int{0, rootPid, 7, 8}
		for i := 0; i+2 < len(ruleBytes) && len(rules) < 8; i += 3 {
			r := Rule{Action: Drop, Pid: pids[int(ruleBytes[i+1])%len(pids)], Fd: int(ruleBytes[i+2] % 10)}
			if ruleBytes[i]%2 == 1 {
				r.Action = Replace
			}
			rules = append(rules, r)
		}
		var out bytes.Buffer
		rep, err := Filter(&out, bytes.NewReader(data), rules, Options{})
		if err != nil {
			if strings.Contains(err.Error(), "no earlier record defines") && !strings.Contains(err.Error(), "corrupt") {
				// The writer refused what the filter produced: unless the
				// input's own header defined the objref, a filter bug.
				if _, rerr := readRecords(data); rerr == nil && !headerDefinesObjref(data) {
					t.Fatalf("the filter wrote a dangling dependency: %v", err)
				}
			}
			return
		}
		recs, err := readRecords(out.Bytes())
		if err != nil {
			t.Fatalf("output does not read back: %v", err)
		}
		if len(rules) == 0 && !rep.HeaderRewritten && !bytes.Equal(data, out.Bytes()) {
			t.Fatal("no rules, and the output differs from the input")
		}
		fds := map[fdRef]ckpt.Objref{}
		supplied := map[ckpt.Objref]bool{}
		for _, r := range recs {
			switch r.Type {
			case ckpt.TypeFd:
				var fd ckpt.Fd
				if json.Unmarshal([]byte(r.Meta), &fd) == nil {
					fds[fdRef{fd.Pid, fd.Fd}] = fd.File
				}
			case ckpt.TypeFile:
				var file ckpt.File
				if json.Unmarshal([]byte(r.Meta), &file) == nil && file.Supplied && len(r.Deps) == 0 && r.Payload == "" {
					supplied[r.Objref] = true
				}
			}
		}
		for _, r := range rep.Dropped {
			if _, ok := fds[fdRef{r.Pid, r.Fd}]; ok {
				t.Errorf("%s applied, and the output has fd %d of pid %d", r, r.Fd, r.Pid)
			}
		}
		for _, r := range rep.Replaced {
			if ref, ok := fds[fdRef{r.Pid, r.Fd}]; !ok || !supplied[ref] {
				t.Errorf("%s applied, and the output's fd %d of pid %d is not bound to a supplied file", r, r.Fd, r.Pid)
			}
		}
	})
}

// headerDefinesObjref reports a forged header record that defines an
// objref, which the writer cannot reproduce.
func headerDefinesObjref(img []byte) bool {
	const preamble, objrefAt = 16, 8
	return len(img) >= preamble+objrefAt+8 && binary.LittleEndian.Uint64(img[preamble+objrefAt:]) != 0
}

// FuzzFilterGenerated builds well-formed images from the fuzzer's bytes, so
// that the filter's logic, not the reader's checksums, meets the odd
// layouts: files shared across processes, chains through unknown types,
// dependents before fds, fds bound to pipes. Beyond FuzzFilter's checks, the
// report must add up and, with rules, no file or pipe record may be left
// without a dependent, and no unknown record that depends on nothing may be
// lost.
func FuzzFilterGenerated(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 1, 3, 0, 2, 0, 4, 0, 1, 4, 1, 1, 2, 0, 4, 0, 2, 6, 0, 0}, []byte{0, 0, 1, 1, 0, 2})
	f.Add([]byte{0, 1, 0, 2, 0, 4, 0, 1, 6, 1, 3, 6, 0, 0, 4, 0, 1}, []byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, prog []byte, ruleBytes []byte) {
		img, unknownLoose := generateImage(t, prog)
		var rules []Rule
		for i := 0; i+2 < len(ruleBytes) && len(rules) < 6; i += 3 {
			r := Rule{Action: Drop, Pid: []int{0, 7, 8}[int(ruleBytes[i+1])%3], Fd: int(ruleBytes[i+2] % 6)}
			if ruleBytes[i]%2 == 1 {
				r.Action = Replace
			}
			rules = append(rules, r)
		}
		in, err := readRecords(img)
		if err != nil {
			t.Fatalf("generated image: %v", err)
		}
		var out bytes.Buffer
		rep, err := Filter(&out, bytes.NewReader(img), rules, Options{})
		if err != nil {
			if strings.Contains(err.Error(), "no earlier record defines") || strings.Contains(err.Error(), "redefines") {
				t.Fatalf("the filter wrote an invalid image: %v", err)
			}
			return
		}
		recs, err := readRecords(out.Bytes())
		if err != nil {
			t.Fatalf("output does not read back: %v", err)
		}
		if len(rules) == 0 && !bytes.Equal(img, out.Bytes()) {
			t.Fatal("no rules, and the output differs from the input")
		}
		if len(in)-len(recs) != rep.RemovedRecords {
			t.Errorf("%d records in, %d out, report says %d removed", len(in), len(recs), rep.RemovedRecords)
		}
		if len(rep.Dropped)+len(rep.Replaced) != len(rules) {
			t.Errorf("%d rules, report lists %d", len(rules), len(rep.Dropped)+len(rep.Replaced))
		}
		depended := map[ckpt.Objref]bool{}
		loose := 0
		for _, r := range recs {
			for _, d := range r.Deps {
				depended[d] = true
			}
			if !r.Type.Known() && len(r.Deps) == 0 {
				loose++
			}
		}
		if loose != unknownLoose {
			t.Errorf("%d unknown records without dependencies in, %d out", unknownLoose, loose)
		}
		if len(rules) > 0 {
			for _, r := range recs {
				if (r.Type == ckpt.TypeFile || r.Type == ckpt.TypePipe) && !depended[r.Objref] {
					t.Errorf("the output keeps a %s record (objref %d) that nothing depends on", r.Type, r.Objref)
				}
			}
		}
	})
}

// generateImage interprets prog as a list of records to write; it returns
// the image and how many records of unknown types without dependencies it
// holds.
func generateImage(t *testing.T, prog []byte) ([]byte, int) {
	b := newBuilder(t)
	var defined, procs, files, pipes []ckpt.Objref
	procPid := map[ckpt.Objref]int{}
	next := func() int {
		if len(prog) == 0 {
			return 0
		}
		v := int(prog[0])
		prog = prog[1:]
		return v
	}
	pick := func(from []ckpt.Objref) (ckpt.Objref, bool) {
		if len(from) == 0 {
			return 0, false
		}
		return from[next()%len(from)], true
	}
	write := func(typ ckpt.Type, define bool, deps []ckpt.Objref, meta any, payload []byte) ckpt.Objref {
		var ref ckpt.Objref
		if define {
			ref = b.w.NewObjref()
			defined = append(defined, ref)
		}
		if err := b.w.WriteWithPayload(typ, ref, deps, meta, int64(len(payload)), func(w io.Writer) error {
			_, err := w.Write(payload)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	loose := 0
	for n := 0; len(prog) > 0 && n < 64; n++ {
		switch next() % 8 {
		case 0:
			write(ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: 7, Tids: []int{7}}, {Pid: 8, Ppid: 7, Tids: []int{8}}}}, nil)
		case 1:
			pid := 7 + next()%2
			ref := write(ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: pid}, nil)
			procs = append(procs, ref)
			procPid[ref] = pid
		case 2:
			var deps []ckpt.Objref
			if p, ok := pick(pipes); ok && next()%2 == 0 {
				deps = append(deps, p)
			}
			var payload []byte
			if next()%3 == 0 {
				payload = []byte("contents")
			}
			files = append(files, write(ckpt.TypeFile, true, deps, &ckpt.File{Kind: ckpt.FileRegular, Flags: next()}, payload))
		case 3:
			pipes = append(pipes, write(ckpt.TypePipe, true, nil, &ckpt.Pipe{Inode: 1}, []byte("buffered")))
		case 4:
			proc, ok1 := pick(procs)
			from := files
			if next()%8 == 0 {
				from = defined // an fd bound to something that is not a file
			}
			file, ok2 := pick(from)
			if !ok1 || !ok2 {
				continue
			}
			fd := next() % 6
			write(ckpt.TypeFd, false, []ckpt.Objref{proc, file}, &ckpt.Fd{Pid: procPid[proc], Fd: fd, File: file}, nil)
		case 5:
			ep, ok1 := pick(files)
			target, ok2 := pick(files)
			if !ok1 || !ok2 {
				continue
			}
			write(ckpt.TypeEpollWatch, false, []ckpt.Objref{ep, target}, &ckpt.EpollWatch{Epoll: ep, Target: target}, nil)
		case 6:
			var deps []ckpt.Objref
			for k := next() % 3; k > 0; k-- {
				if d, ok := pick(defined); ok && !slices.Contains(deps, d) {
					deps = append(deps, d)
				}
			}
			if len(deps) == 0 {
				loose++
			}
			write(ckpt.Type(0x7000+next()%4), next()%2 == 0, deps, json.RawMessage(`{}`), []byte("x"))
		case 7:
			if p, ok := pick(procs); ok {
				write(ckpt.TypeMM, true, []ckpt.Objref{p}, &ckpt.MM{Pid: procPid[p]}, nil)
			}
		}
	}
	return b.done(), loose
}

// A pty both of whose descriptions are replaced goes with them, as a pipe
// does; one whose slave stays keeps its record.
func TestPtyCollected(t *testing.T) {
	b := newBuilder(t)
	b.add("tree", ckpt.TypeTree, false, nil, &ckpt.Tree{Processes: []ckpt.TreeProcess{{Pid: rootPid, Pgid: rootPid, Sid: rootPid, Tids: []int{rootPid}}}}, nil)
	b.add("process", ckpt.TypeProcess, true, nil, &ckpt.Process{Pid: rootPid}, nil)
	b.add("pty", ckpt.TypePty, true, nil, &ckpt.Pty{Index: 3, Termios: make([]byte, 44), Rows: 24, Cols: 80}, nil)
	b.add("master", ckpt.TypeFile, true, []string{"pty"}, &ckpt.File{Kind: ckpt.FilePtyMaster, Path: "/dev/ptmx", Flags: unix.O_RDWR}, nil)
	b.add("fd3", ckpt.TypeFd, false, []string{"process", "master"}, &ckpt.Fd{Pid: rootPid, Fd: 3, File: b.refs["master"]}, nil)
	b.add("slave", ckpt.TypeFile, true, []string{"pty"}, &ckpt.File{Kind: ckpt.FilePtySlave, Path: "/dev/pts/3", Flags: unix.O_RDWR}, nil)
	b.add("fd4", ckpt.TypeFd, false, []string{"process", "slave"}, &ckpt.Fd{Pid: rootPid, Fd: 4, File: b.refs["slave"]}, nil)
	img := b.done()
	in := b.named(img)

	out, _, err := runFilter(t, img, drop(0, 3), drop(0, 4))
	if err != nil {
		t.Fatal(err)
	}
	got := readImage(t, out)
	nameOutput(in, got)
	if diff := cmp.Diff(without(in, "pty", "master", "fd3", "slave", "fd4"), got); diff != "" {
		t.Errorf("both ends dropped: records (-want +got):\n%s", diff)
	}

	out, _, err = runFilter(t, img, drop(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	got = readImage(t, out)
	nameOutput(in, got)
	if diff := cmp.Diff(without(in, "master", "fd3"), got); diff != "" {
		t.Errorf("master dropped: records (-want +got):\n%s", diff)
	}
}

// With ReplaceShared, a Replace rule covers the fds after its own that
// share its open file: they keep pointing at it, now supplied at restart.
// A sharer before the ruled fd still needs a rule of its own.
func TestReplaceShared(t *testing.T) {
	_, img := realisticImage(t)
	run := func(rules ...Rule) ([]byte, error) {
		var out bytes.Buffer
		opts := DefaultOptions()
		opts.TempDir, opts.ReplaceShared = t.TempDir(), true
		_, err := Filter(&out, bytes.NewReader(img), rules, opts)
		return out.Bytes(), err
	}
	out, err := run(replace(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	fileOf := map[int]ckpt.Objref{}
	supplied := map[ckpt.Objref]bool{}
	for _, r := range readImage(t, out) {
		switch r.Type {
		case ckpt.TypeFd:
			var fd ckpt.Fd
			if err := json.Unmarshal([]byte(r.Meta), &fd); err != nil {
				t.Fatal(err)
			}
			if fd.Pid == rootPid {
				fileOf[fd.Fd] = fd.File
			}
		case ckpt.TypeFile:
			var f ckpt.File
			if err := json.Unmarshal([]byte(r.Meta), &f); err != nil {
				t.Fatal(err)
			}
			supplied[r.Objref] = f.Supplied
		}
	}
	if fileOf[1] == 0 || fileOf[2] != fileOf[1] || !supplied[fileOf[1]] {
		t.Errorf("fds 1 and 2 name files %d and %d (supplied: %v), want one supplied file", fileOf[1], fileOf[2], supplied[fileOf[1]])
	}
	if _, err := run(replace(0, 2)); !errors.Is(err, ErrShared) {
		t.Errorf("a rule for fd 2, which fd 1 shares and comes before: error %v, want ErrShared", err)
	}
}

package ckpt

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Namespace records and the records of what they hold read back as
// written, with the objrefs processes name them by.
func TestNamespaceRecords(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	namespaces := []Namespace{
		{Kind: NamespaceUTS, Inode: 4026532500, Pid: 42, UTS: &UTSNamespace{Hostname: "ctr", Domainname: "example"}},
		{Kind: NamespaceIPC, Inode: 4026532501, Pid: 42, IPC: &IPCNamespace{Sysctls: map[string]string{"kernel/msgmax": "8192", "kernel/sem": "32000 1024000000 500 32000"}}},
		{Kind: NamespacePid, Inode: 4026532502, Pid: 42},
		{Kind: NamespaceTime, Inode: 4026532503, Pid: 42, Time: &TimeNamespace{Monotonic: 1000e9, Boottime: -5}},
		{Kind: NamespaceCgroup, Inode: 4026532504, Pid: 43, Cgroup: &CgroupNamespace{Roots: []Cgroup{{Controllers: "", Path: "/ctr"}, {Controllers: "cpu,cpuacct", Path: "/ctr"}}}},
	}
	var refs []Objref
	for i := range namespaces {
		ref := w.NewObjref()
		refs = append(refs, ref)
		if err := w.Write(TypeNamespace, ref, nil, &namespaces[i]); err != nil {
			t.Fatal(err)
		}
	}
	proc := Process{Pid: 42, Comm: "init", Namespaces: map[string]Objref{"uts": refs[0], "ipc": refs[1], "pid_for_children": refs[2], "time": refs[3]}}
	seg := SysVSegment{SysVShm: SysVShm{ID: 3, Key: 0x1234, Mode: 0o640, Removed: true}, Size: 5}
	sem := SysVSemSet{ID: 1, Key: 0x2345, Mode: 0o600, Values: []uint16{1, 2, 65535}}
	msg := SysVMsgQueue{ID: 2, Key: 0x3456, Mode: 0o620, Qbytes: 16384, Messages: 1}
	steps := []error{
		w.Write(TypeProcess, w.NewObjref(), refs[:4], &proc),
		w.WriteWithPayload(TypeSysVShm, w.NewObjref(), []Objref{refs[1]}, &seg, 5, func(pw io.Writer) error { _, err := pw.Write([]byte("hello")); return err }),
		w.Write(TypeSysVSem, 0, []Objref{refs[1]}, &sem),
		w.WriteWithPayload(TypeSysVMsg, 0, []Objref{refs[1]}, &msg, 2, func(pw io.Writer) error { _, err := pw.Write([]byte("hi")); return err }),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}

	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var gotNs []Namespace
	var gotProc Process
	var gotSeg SysVSegment
	var gotSem SysVSemSet
	var gotMsg SysVMsgQueue
	var types []Type
	payloads := map[Type]string{}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, rec.Type)
		switch rec.Type {
		case TypeNamespace:
			var n Namespace
			err = rec.Decode(&n)
			gotNs = append(gotNs, n)
		case TypeProcess:
			err = rec.Decode(&gotProc)
		case TypeSysVShm:
			err = rec.Decode(&gotSeg)
		case TypeSysVSem:
			err = rec.Decode(&gotSem)
		case TypeSysVMsg:
			err = rec.Decode(&gotMsg)
		}
		if err != nil {
			t.Fatal(err)
		}
		if b, err := rec.PayloadBytes(1 << 10); err != nil {
			t.Fatal(err)
		} else if len(b) > 0 {
			payloads[rec.Type] = string(b)
		}
	}
	wantTypes := []Type{TypeNamespace, TypeNamespace, TypeNamespace, TypeNamespace, TypeNamespace, TypeProcess, TypeSysVShm, TypeSysVSem, TypeSysVMsg}
	for _, c := range []struct {
		what      string
		want, got any
	}{
		{"types", wantTypes, types},
		{"namespaces", namespaces, gotNs},
		{"process", proc, gotProc},
		{"segment", seg, gotSeg},
		{"semaphores", sem, gotSem},
		{"message queue", msg, gotMsg},
		{"payloads", map[Type]string{TypeSysVShm: "hello", TypeSysVMsg: "hi"}, payloads},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.what, diff)
		}
	}
	for _, typ := range []Type{TypeNamespace, TypeSysVShm, TypeSysVSem, TypeSysVMsg} {
		if !typ.Known() {
			t.Errorf("%s is not a known type", typ)
		}
	}
}

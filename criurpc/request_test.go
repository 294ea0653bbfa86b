package criurpc

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// base returns the options every runtime request carries.
func base() *rpcpb.CriuOpts { return &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(7))} }

func with(f func(o *rpcpb.CriuOpts)) *rpcpb.CriuOpts {
	o := base()
	f(o)
	return o
}

// runcDump is what runc 1.1+ sends to checkpoint a container (Checkpoint in
// libcontainer/criu_linux.go), with its defaults.
func runcDump() *rpcpb.CriuOpts {
	return &rpcpb.CriuOpts{
		ImagesDirFd:       ptr(int32(5)),
		LogLevel:          ptr(int32(4)),
		LogFile:           ptr("dump.log"),
		Root:              ptr("/run/runc/ctr/rootfs"),
		ManageCgroups:     ptr(true),
		ManageCgroupsMode: rpcpb.CriuCgMode_DEFAULT.Enum(),
		NotifyScripts:     ptr(true),
		Pid:               ptr(int32(4242)),
		ShellJob:          ptr(false),
		LeaveRunning:      ptr(false),
		TcpEstablished:    ptr(false),
		TcpSkipInFlight:   ptr(false),
		LinkRemap:         ptr(false),
		ExtUnixSk:         ptr(false),
		FileLocks:         ptr(false),
		EmptyNs:           ptr(uint32(0)),
		OrphanPtsMaster:   ptr(true),
		AutoDedup:         ptr(false),
		LazyPages:         ptr(false),
		FreezeCgroup:      ptr("/sys/fs/cgroup/ctr"),
		ExtMnt:            []*rpcpb.ExtMountMap{{Key: ptr("/etc/hosts"), Val: ptr("/etc/hosts")}},
		External:          []string{"net[4026531840]:extRootNetNS"},
	}
}

// runcRestore is what runc sends to restore one (Restore and
// criuApplyCgroups).
func runcRestore() *rpcpb.CriuOpts {
	return &rpcpb.CriuOpts{
		ImagesDirFd:       ptr(int32(5)),
		EvasiveDevices:    ptr(true),
		LogLevel:          ptr(int32(4)),
		LogFile:           ptr("restore.log"),
		RstSibling:        ptr(true),
		Root:              ptr("/run/runc/ctr/criu-root"),
		ManageCgroups:     ptr(true),
		ManageCgroupsMode: rpcpb.CriuCgMode_DEFAULT.Enum(),
		NotifyScripts:     ptr(true),
		ShellJob:          ptr(false),
		ExtUnixSk:         ptr(false),
		TcpEstablished:    ptr(false),
		FileLocks:         ptr(false),
		EmptyNs:           ptr(uint32(0)),
		OrphanPtsMaster:   ptr(true),
		AutoDedup:         ptr(false),
		LazyPages:         ptr(false),
		InheritFd:         []*rpcpb.InheritFd{{Key: ptr("pipe:[123]"), Fd: ptr(int32(1))}, {Key: ptr("extRootNetNS"), Fd: ptr(int32(4))}},
		CgRoot:            []*rpcpb.CgroupRoot{{Ctrl: ptr("memory"), Path: ptr("/ctr2")}, {Ctrl: ptr(""), Path: ptr("/ctr2")}, {Path: ptr("/all")}},
		ExtMnt:            []*rpcpb.ExtMountMap{{Key: ptr("/etc/hosts"), Val: ptr("/var/lib/ctr/hosts")}},
	}
}

func TestParseRequest(t *testing.T) {
	dump, restore := rpcpb.CriuReqType_DUMP, rpcpb.CriuReqType_RESTORE
	req := func(t rpcpb.CriuReqType, f func(r *Request)) *Request {
		r := &Request{Type: t, ImagesDirFd: -1, WorkDirFd: -1, LogLevel: 2}
		f(r)
		return r
	}
	for _, tc := range []struct {
		name    string
		typ     rpcpb.CriuReqType
		opts    *rpcpb.CriuOpts
		want    *Request
		refused string // the field named by the refusal
	}{
		{name: "no options", typ: rpcpb.CriuReqType_CHECK, want: req(rpcpb.CriuReqType_CHECK, func(*Request) {})},
		{name: "runc checkpoint", typ: dump, opts: runcDump(), want: req(dump, func(r *Request) {
			r.ImagesDirFd, r.LogLevel, r.LogFile, r.Notify, r.Pid = 5, 4, "dump.log", true, 4242
		})},
		{name: "runc checkpoint --leave-running, work path, parent", typ: dump, opts: func() *rpcpb.CriuOpts {
			o := runcDump()
			o.LeaveRunning, o.WorkDirFd, o.ParentImg, o.TrackMem = ptr(true), ptr(int32(6)), ptr("../pre"), ptr(true)
			return o
		}(), want: req(dump, func(r *Request) {
			r.ImagesDirFd, r.WorkDirFd, r.LogLevel, r.LogFile, r.Notify, r.Pid = 5, 6, 4, "dump.log", true, 4242
			r.LeaveRunning, r.ParentImage = true, "../pre"
		})},
		{name: "runc restore", typ: restore, opts: runcRestore(), want: req(restore, func(r *Request) {
			r.ImagesDirFd, r.LogLevel, r.LogFile, r.Notify = 5, 4, "restore.log", true
			r.Sibling, r.Root, r.OrphanPtsMaster = true, "/run/runc/ctr/criu-root", true
			r.InheritFds = []InheritFd{{"pipe:[123]", 1}, {"extRootNetNS", 4}}
			r.CgroupRoots = []CgroupRoot{{Ctrl: "memory", Path: "/ctr2"}, {Ctrl: "", Path: "/ctr2"}, {Path: "/all", Every: true}}
			r.ExtMounts = []ExtMount{{"/etc/hosts", "/var/lib/ctr/hosts"}}
		})},
		{name: "images dir by path, log on stderr, timeout, stats", typ: dump,
			opts: &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(-1)), ImagesDir: ptr("/img"), Pid: ptr(int32(9)), LogToStderr: ptr(true), Timeout: ptr(uint32(5)), DisplayStats: ptr(true)},
			want: req(dump, func(r *Request) {
				r.ImagesDir, r.Pid, r.LogToStderr, r.Timeout, r.DisplayStats = "/img", 9, true, 5*time.Second, true
			})},
		{name: "join_ns", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.JoinNs = []*rpcpb.JoinNamespace{{Ns: ptr("net"), NsFile: ptr("/proc/1/ns/net")}}
		}), want: req(restore, func(r *Request) {
			r.ImagesDirFd, r.JoinNamespaces = 7, []JoinNamespace{{"net", "/proc/1/ns/net"}}
		})},
		{name: "external mount on restore", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.External = []string{"mnt[/etc/hosts]:/h"} }),
			want: req(restore, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "options off that runtimes always send", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.LazyPages, o.AutoDedup, o.TcpClose, o.Unprivileged, o.LeaveStopped, o.EmptyNs = ptr(false), ptr(false), ptr(false), ptr(false), ptr(false), ptr(uint32(0))
		}), want: req(restore, func(r *Request) { r.ImagesDirFd = 7 })},

		{name: "lazy pages", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.LazyPages = ptr(true) }), refused: "lazy_pages"},
		{name: "page server", typ: dump, opts: with(func(o *rpcpb.CriuOpts) {
			o.Ps = &rpcpb.CriuPageServerInfo{Address: ptr("10.0.0.1"), Port: ptr(int32(1234))}
		}), want: req(dump, func(r *Request) {
			r.ImagesDirFd, r.PageServer = 7, &PageServer{Fd: -1, Address: "10.0.0.1", Port: 1234}
		})},
		{name: "page server socket", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.Ps = &rpcpb.CriuPageServerInfo{Fd: ptr(int32(5))} }),
			want: req(dump, func(r *Request) { r.ImagesDirFd, r.PageServer = 7, &PageServer{Fd: 5} })},
		{name: "page server without fd or port", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.Ps = &rpcpb.CriuPageServerInfo{Address: ptr("10.0.0.1")} }), refused: "ps"},
		{name: "page server on restore", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.Ps = &rpcpb.CriuPageServerInfo{Fd: ptr(int32(5))} }), refused: "ps"},
		{name: "status fd", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.StatusFd = ptr(int32(3)) }), refused: "status_fd"},
		// runc always sends it: crsub restores the network namespace as it was.
		{name: "empty net ns", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.EmptyNs = ptr(uint32(0x40000000)) }),
			want: req(restore, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "empty mount ns on restore", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.EmptyNs = ptr(uint32(0x00020000)) }), refused: "empty_ns"},
		{name: "veth pairs", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr("veth1")}, {IfIn: ptr("eth1"), IfOut: ptr("veth2@br0")}}
			o.External = []string{"veth[eth2]:veth3", "netdev[eth3]:given0"}
		}), want: req(restore, func(r *Request) {
			r.ImagesDirFd = 7
			r.Veths = []VethPair{{"eth0", "veth1", ""}, {"eth1", "veth2", "br0"}, {"eth2", "veth3", ""}}
			r.Links = map[string]string{"eth3": "given0"}
		})},
		{name: "veth pairs on a dump", typ: dump, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr("veth1")}}
			o.External = []string{"veth[eth0]:veth1"}
		}), want: req(dump, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "veth pair with a link given twice", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr("veth1")}, {IfIn: ptr("eth0"), IfOut: ptr("veth2")}}
		}), refused: "veths"},
		{name: "veth pair with one host end twice", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr("veth1")}, {IfIn: ptr("eth1"), IfOut: ptr("veth1")}}
		}), refused: "veths"},
		{name: "veth pair named too long", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("eth0"), IfOut: ptr("a-name-too-long-for-a-link")}}
		}), refused: "veths"},
		{name: "veth pair named with a slash", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.Veths = []*rpcpb.CriuVethPair{{IfIn: ptr("../x"), IfOut: ptr("veth1")}}
		}), refused: "veths"},
		{name: "veth external and netdev for one link", typ: restore, opts: with(func(o *rpcpb.CriuOpts) {
			o.External = []string{"veth[eth0]:veth1", "netdev[eth0]:given0"}
		}), refused: "external"},
		{name: "veth external without its host end", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.External = []string{"veth[eth0]"} }), refused: "external"},
		{name: "exec_cmd", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.ExecCmd = []string{"/bin/true"} }), refused: "exec_cmd"},
		{name: "config file", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.ConfigFile = ptr("/etc/passwd") }), refused: "config_file"},
		{name: "missing config file", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.ConfigFile = ptr("/nonexistent/runc.conf") }),
			want: req(dump, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "empty net ns left out of a dump", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.EmptyNs = ptr(uint32(0x40000000)) }),
			want: req(dump, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "empty mount ns", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.EmptyNs = ptr(uint32(0x00020000)) }), refused: "empty_ns"},
		{name: "cgroups ignored", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.ManageCgroupsMode = rpcpb.CriuCgMode_IGNORE.Enum() }), refused: "manage_cgroups_mode"},
		{name: "cgroup properties", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.ManageCgroupsMode = rpcpb.CriuCgMode_FULL.Enum() }), refused: "manage_cgroups_mode"},
		{name: "cgroups not managed", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.ManageCgroups = ptr(false) }), refused: "manage_cgroups"},
		{name: "cgroup root on dump", typ: dump, opts: with(func(o *rpcpb.CriuOpts) {
			o.CgRoot = []*rpcpb.CgroupRoot{{Path: ptr("/x")}}
		}), refused: "cg_root"},
		{name: "no network lock", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.NetworkLock = rpcpb.CriuNetworkLockMethod_SKIP.Enum() }),
			want: req(dump, func(r *Request) { r.ImagesDirFd = 7 })},
		{name: "log file in a subdirectory", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.LogFile = ptr("logs/dump.log") }), refused: "log_file"},
		{name: "net external on restore", typ: restore, opts: with(func(o *rpcpb.CriuOpts) { o.External = []string{"net[1]:k"} }), refused: "external"},
		{name: "malformed external", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.External = []string{"nonsense"} }), refused: "external"},
		{name: "leave stopped", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.LeaveStopped = ptr(true) }), refused: "leave_stopped"},
		{name: "tls", typ: dump, opts: with(func(o *rpcpb.CriuOpts) { o.Tls = ptr(true) }), refused: "tls"},
		{name: "unknown field", typ: dump, opts: with(func(o *rpcpb.CriuOpts) {
			o.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 200, protowire.VarintType), 1))
		}), refused: "criu_opts field 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.typ, tc.opts)
			if tc.refused != "" {
				var re *RefusedError
				if !errors.As(err, &re) || re.Field != tc.refused {
					t.Fatalf("ParseRequest = %+v, %v; want %s refused", got, err, tc.refused)
				}
				if re.Reason == "" {
					t.Errorf("refusal of %s gives no reason", re.Field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(Request{})); diff != "" {
				t.Errorf("ParseRequest (-want +got):\n%s", diff)
			}
		})
	}
}

// Every criu_opts field has a rule: none is dropped or refused without a
// reason written for it.
func TestEveryFieldHasARule(t *testing.T) {
	fields := (&rpcpb.CriuOpts{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := fields.Get(i).Name()
		ru, ok := rules[name]
		if !ok || ru.dump == nil || ru.restore == nil {
			t.Errorf("criu_opts field %s has no rule for dump and restore", name)
		}
	}
	for name := range rules {
		if fields.ByName(name) == nil {
			t.Errorf("rule for %s, which criu_opts does not have", name)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	good, err := proto.Marshal(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: runcDump()})
	if err != nil {
		t.Fatal(err)
	}
	req, err := decodeRequest(good)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(runcDump(), req.GetOpts(), cmpProto); diff != "" {
		t.Errorf("decoded options (-want +got):\n%s", diff)
	}
	noType, _ := proto.Marshal(&rpcpb.CriuReq{KeepOpen: ptr(true)})
	noImages, _ := proto.MarshalOptions{AllowPartial: true}.Marshal(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_DUMP.Enum(), Opts: &rpcpb.CriuOpts{Pid: ptr(int32(1))}})
	for name, b := range map[string][]byte{
		"garbage":             []byte("\xff\xff\xff\xff"),
		"cut short":           good[:len(good)-3],
		"no type":             noType,
		"opts without images": noImages,
	} {
		if _, err := decodeRequest(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: decodeRequest error %v, want a malformed request", name, err)
		}
	}
}

var cmpProto = cmp.Comparer(proto.Equal)

// FuzzDecodeRequest: no input crashes the decoder or the options mapping,
// and what decodes maps either to a Request or to an error.
func FuzzDecodeRequest(f *testing.F) {
	for _, o := range []*rpcpb.CriuOpts{runcDump(), runcRestore(), base()} {
		for _, typ := range []rpcpb.CriuReqType{rpcpb.CriuReqType_DUMP, rpcpb.CriuReqType_RESTORE} {
			b, err := proto.Marshal(&rpcpb.CriuReq{Type: typ.Enum(), Opts: o, NotifySuccess: ptr(true)})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	v, _ := proto.Marshal(&rpcpb.CriuReq{Type: rpcpb.CriuReqType_VERSION.Enum()})
	f.Add(v)
	for _, req := range recordedRequests(f) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("decode error %v is not errMalformed", err)
			}
			return
		}
		r, err := ParseRequest(req.GetType(), req.GetOpts())
		if (r == nil) == (err == nil) {
			t.Fatalf("ParseRequest = %v, %v", r, err)
		}
	})
}

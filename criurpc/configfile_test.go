package criurpc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []configOption
		err      string
	}{
		{name: "empty", in: "\n  \n# only a comment\n"},
		{name: "forms", in: "tcp-established\nlog-file /tmp/x.log\nmanage-cgroups=soft\n\t--external \"mnt[/a b]:/c\" # why\nghost-limit 1M # comment\n", want: []configOption{
			{line: 1, name: "tcp-established"},
			{line: 2, name: "log-file", value: "/tmp/x.log", hasValue: true},
			{line: 3, name: "manage-cgroups", value: "soft", hasValue: true},
			{line: 4, name: "external", value: "mnt[/a b]:/c", hasValue: true},
			{line: 5, name: "ghost-limit", value: "1M", hasValue: true},
		}},
		{name: "escaped quote and a hash in quotes", in: `lsm-profile "a \"b\" #c"`, want: []configOption{
			{line: 1, name: "lsm-profile", value: `a "b" #c`, hasValue: true},
		}},
		{name: "comment after a name", in: "shell-job# a job\n", want: []configOption{{line: 1, name: "shell-job"}}},
		{name: "two words unquoted", in: "external a b", err: "line 1"},
		{name: "two values", in: "log-file=a b", err: "two values"},
		{name: "unclosed quote", in: `root "/x`, err: "no closing quote"},
		{name: "text after a quoted value", in: `root "/x" y`, err: "after the value"},
		{name: "no name", in: "--", err: "no option name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseConfig = %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(configOption{})); diff != "" {
				t.Errorf("parseConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("tcp-established\nlog-file /tmp/x.log\nexternal \"mnt[/a]:/b\" # c\n"))
	f.Add([]byte(`a "b\"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts, err := parseConfig(data)
		if err != nil {
			return
		}
		for _, o := range opts {
			if o.name == "" || strings.HasPrefix(o.name, "-") {
				t.Fatalf("option %+v has no name", o)
			}
			if !o.hasValue && o.value != "" {
				t.Fatalf("option %+v has a value it does not have", o)
			}
			// Whatever the file says, applying it refuses or sets; it
			// never panics.
			_ = applyConfig(&rpcpb.CriuOpts{}, o)
		}
	})
}

// A configuration file's options override the request's, as CRIU's RPC
// configuration file does; each one crsub does not honour is refused with
// the file, line and option named.
func TestConfigFile(t *testing.T) {
	dump, restore := rpcpb.CriuReqType_DUMP, rpcpb.CriuReqType_RESTORE
	req := func(t rpcpb.CriuReqType, f func(r *Request)) *Request {
		r := &Request{Type: t, ImagesDirFd: 7, WorkDirFd: -1, LogLevel: 4, LogFile: "req.log"}
		f(r)
		return r
	}
	for _, tc := range []struct {
		name, conf string
		typ        rpcpb.CriuReqType
		leave      bool // the request's leave_running
		want       *Request
		refused    string // in the refusal's reason
	}{
		{name: "runc.conf", typ: restore, conf: "tcp-established\nlog-file /tmp/x.log\nmanage-cgroups soft\nexternal mnt[/a]:/b\ninherit-fd fd[3]:pipe:[12]\ncgroup-root cpu:/c\n",
			want: req(restore, func(r *Request) {
				r.LogFile, r.logPath = "/tmp/x.log", true
				r.InheritFds = []InheritFd{{"pipe:[12]", 3}}
				r.CgroupRoots = []CgroupRoot{{Ctrl: "cpu", Path: "/c"}}
			})},
		{name: "leave running", typ: dump, conf: "leave-running\ntimeout=5\nghost-limit 1M\n", want: req(dump, func(r *Request) {
			r.LeaveRunning, r.Timeout = true, 5*time.Second
		})},
		{name: "action scripts", typ: dump, conf: "action-script /a.sh\naction-script \"/b c.sh\"\n", want: req(dump, func(r *Request) {
			r.ActionScripts = []string{"/a.sh", "/b c.sh"}
		})},
		{name: "action script without a path", typ: dump, conf: "action-script", refused: "action-script needs a value"},
		{name: "overrides the request", typ: dump, leave: true, conf: "no-leave-running\nverbosity 2\n", want: req(dump, func(r *Request) { r.LogLevel = 2 })},
		{name: "log file relative to the work directory", typ: dump, conf: "log-file logs/d.log", want: req(dump, func(r *Request) {
			r.LogFile, r.logPath = "logs/d.log", true
		})},
		{name: "refused option", typ: dump, conf: "# what runc users set\ntcp-established\ntcp-close\n", refused: "line 3: tcp-close: tcp_close: "},
		{name: "unknown option", typ: dump, conf: "no-such-option", refused: "line 1: no-such-option: unknown option"},
		{name: "bool with a value", typ: dump, conf: "shell-job yes", refused: "takes no value"},
		{name: "value missing", typ: dump, conf: "timeout", refused: "needs a value"},
		{name: "not a number", typ: dump, conf: "timeout soon", refused: "not a number"},
		{name: "bad enum", typ: dump, conf: "network-lock fast", refused: "not one of its values"},
		{name: "log file without a name", typ: dump, conf: "log-file", refused: "log-file needs a value"},
		{name: "work directory", typ: dump, conf: "work-dir /tmp", refused: "work_dir_fd"},
		{name: "syntax", typ: dump, conf: "external a b", refused: "double quotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runc.conf")
			if err := os.WriteFile(path, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			opts := &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(7)), LogLevel: ptr(int32(4)), LogFile: ptr("req.log"), ConfigFile: &path}
			if tc.leave {
				opts.LeaveRunning = ptr(true)
			}
			got, err := ParseRequest(tc.typ, opts)
			if tc.refused != "" {
				var re *RefusedError
				if !errors.As(err, &re) || re.Field != "config_file" || !strings.Contains(re.Reason, tc.refused) || !strings.Contains(re.Reason, path) {
					t.Fatalf("ParseRequest = %+v, %v; want config_file refused with %q and the path", got, err, tc.refused)
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

// Default configuration files lie beneath a request, in CRIU's order; the
// request's own config_file is over it.
func TestDefaultConfigFiles(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv("CRIU_CONFIG_FILE", "/env.conf")
	if diff := cmp.Diff([]string{"/etc/criu/default.conf", "/home/u/.criu/default.conf", "/env.conf"}, DefaultConfigFiles(false)); diff != "" {
		t.Errorf("DefaultConfigFiles(false) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/env.conf"}, DefaultConfigFiles(true)); diff != "" {
		t.Errorf("DefaultConfigFiles(true) (-want +got):\n%s", diff)
	}

	dir := t.TempDir()
	write := func(name, conf string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	global := write("global.conf", "leave-running\nlog-file /g.log\naction-script /g.sh\ntimeout 3\n")
	user := write("user.conf", "timeout 4\naction-script /u.sh\n")
	rpcConf := write("rpc.conf", "timeout 9\naction-script /r.sh\n")
	s := &session{cfg: Config{ConfigFiles: []string{global, user, filepath.Join(dir, "missing.conf")}}}
	dump := rpcpb.CriuReqType_DUMP
	for _, tc := range []struct {
		name string
		opts *rpcpb.CriuOpts
		want func(r *Request)
	}{
		{"beneath an empty request", &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(7))}, func(r *Request) {
			r.LeaveRunning, r.Timeout, r.LogFile, r.logPath = true, 4*time.Second, "/g.log", true
			r.ActionScripts = []string{"/g.sh", "/u.sh"}
		}},
		{"the request's fields win", &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(7)), LeaveRunning: ptr(false), LogFile: ptr("d.log"), Timeout: ptr(uint32(5))}, func(r *Request) {
			r.Timeout, r.LogFile = 5*time.Second, "d.log"
			r.ActionScripts = []string{"/g.sh", "/u.sh"}
		}},
		{"and its config file wins over them", &rpcpb.CriuOpts{ImagesDirFd: ptr(int32(7)), Timeout: ptr(uint32(5)), ConfigFile: &rpcConf}, func(r *Request) {
			r.LeaveRunning, r.Timeout, r.LogFile, r.logPath = true, 9*time.Second, "/g.log", true
			r.ActionScripts = []string{"/g.sh", "/u.sh", "/r.sh"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.parse(dump, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := &Request{Type: dump, ImagesDirFd: 7, WorkDirFd: -1, LogLevel: 2}
			tc.want(want)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(Request{})); diff != "" {
				t.Errorf("parse (-want +got):\n%s", diff)
			}
		})
	}
	if err := CheckConfigFiles([]string{write("bad.conf", "no-such-option\n")}); err == nil || !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("CheckConfigFiles of a bad file: %v", err)
	}
}

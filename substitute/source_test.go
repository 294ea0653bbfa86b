package substitute

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec string
		want Source
		str  string // String(), when it differs from spec
	}{
		{spec: "file:/var/log/app.log", want: Source{Kind: KindFile, Path: "/var/log/app.log"}},
		{spec: "file:/var/log/app.log,wo,append,create,mode=0640",
			want: Source{Kind: KindFile, Path: "/var/log/app.log", Access: WriteOnly, Append: true, Create: true, Mode: 0o640}},
		{spec: "file:rel/x.log,create,trunc,mode=600,rw",
			want: Source{Kind: KindFile, Path: "rel/x.log", Access: ReadWrite, Trunc: true, Create: true, Mode: 0o600},
			str:  "file:rel/x.log,rw,trunc,create,mode=0600"},
		{spec: "file:/a:b", want: Source{Kind: KindFile, Path: "/a:b"}},
		{spec: "file:/dev/tty,ro", want: Source{Kind: KindFile, Path: "/dev/tty", Access: ReadOnly}},
		{spec: "null", want: Source{Kind: KindNull}},
		{spec: "tcp-listen:127.0.0.1:0", want: Source{Kind: KindTCPListen, Host: "127.0.0.1"}},
		{spec: "tcp-listen:[::1]:8080,backlog=16", want: Source{Kind: KindTCPListen, Host: "::1", Port: 8080, Backlog: 16}},
		{spec: "tcp-listen:[::]:80", want: Source{Kind: KindTCPListen, Host: "::", Port: 80}},
		{spec: "tcp-listen:[fe80::1%eth0]:80", want: Source{Kind: KindTCPListen, Host: "fe80::1%eth0", Port: 80}},
		{spec: "tcp-listen:localhost:65535", want: Source{Kind: KindTCPListen, Host: "localhost", Port: 65535}},
		{spec: "tcp:example.com:443", want: Source{Kind: KindTCP, Host: "example.com", Port: 443}},
		{spec: "tcp:10.0.0.1:080", want: Source{Kind: KindTCP, Host: "10.0.0.1", Port: 80}, str: "tcp:10.0.0.1:80"},
		{spec: "udp:[2001:db8::1]:514", want: Source{Kind: KindUDP, Host: "2001:db8::1", Port: 514}},
		{spec: "unix-listen:/run/app.sock", want: Source{Kind: KindUnixListen, Path: "/run/app.sock"}},
		{spec: "unix:@app", want: Source{Kind: KindUnix, Path: "@app"}},
		{spec: "fd:0", want: Source{Kind: KindFD}},
		{spec: "fd:3,wo", want: Source{Kind: KindFD, FD: 3, Access: WriteOnly}},
		{spec: "exec:cat > /tmp/x, y", want: Source{Kind: KindExec, Command: "cat > /tmp/x, y"}},
		{spec: "exec:logger -t app", want: Source{Kind: KindExec, Command: "logger -t app"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.spec, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.spec, diff)
		}
		wantStr := tt.str
		if wantStr == "" {
			wantStr = tt.spec
		}
		if s := got.String(); s != wantStr {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.spec, s, wantStr)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ spec, reason string }{
		{"", "empty spec"},
		{"bogus:x", `unknown kind "bogus" (want file:, null, tcp-listen:, tcp:, udp:, unix-listen:, unix:, fd: or exec:)`},
		{"/var/log/x", `unknown kind "/var/log/x" (want file:, null, tcp-listen:, tcp:, udp:, unix-listen:, unix:, fd: or exec:)`},
		{"file", "file needs :PATH"},
		{"file,append", "file needs :PATH"},
		{"file:", "empty path"},
		{"file:,append", "empty path"},
		{"file:/x,ro,wo", "conflicting ro and wo"},
		{"file:/x,frob", `unknown option "frob" for file (want append, trunc, create, nocreate, mode, ro, wo, rw)`},
		{"file:/x,create,mode=0999", `mode "0999" is not octal`},
		{"file:/x,create,mode=rw", `mode "rw" is not octal`},
		{"file:/x,create,mode", `option "mode" needs a value, like mode=0640`},
		{"file:/x,create,mode=01777", "mode 01777 has bits beyond 0777"},
		{"file:/x,create,mode=0", "mode 0 would make the file inaccessible"},
		{"file:/x,nocreate,mode=0640", "mode conflicts with nocreate: it only applies to a file the open creates"},
		{"file:/x,create,nocreate", "conflicting create and nocreate"},
		{"file:/x,append=1", `option "append" takes no value`},
		{"file:/x,,append", `empty option in ",append"`},
		{"file:/x,", `empty option in ""`},
		{"file:/x,append,append", `option "append" given twice`},
		{"file:/x,ro,trunc", "ro conflicts with trunc"},
		{"file:/x,append,ro", "ro conflicts with append"},
		{"file:/x\x00y", `path "/x\x00y" contains a NUL byte`},
		{"tcp-listen:[::1:80", "missing ']'"},
		{"tcp-listen:[::1]80", "missing :PORT after ']'"},
		{"tcp-listen:::1:80", `IPv6 address "::1" must be in brackets, like [::1]:80`},
		{"tcp-listen:127.0.0.1", "missing :PORT"},
		{"tcp-listen:127.0.0.1:", "missing port"},
		{"tcp-listen:127.0.0.1:http", `bad port "http": not a decimal number`},
		{"tcp-listen:127.0.0.1:-1", `bad port "-1": not a decimal number`},
		{"tcp-listen:127.0.0.1:65536", "bad port 65536: more than 65535"},
		{"tcp-listen::80", "empty host (use 0.0.0.0 or [::] for all addresses)"},
		{"tcp-listen:[127.0.0.1]:80", `brackets are for IPv6 addresses, not "127.0.0.1"`},
		{"tcp-listen:[::g]:80", `"::g" is not an IPv6 address`},
		{"tcp-listen:127.0.0.1:80,backlog=0", "backlog must be at least 1"},
		{"tcp-listen:127.0.0.1:80,backlog", `option "backlog" needs a value, like backlog=128`},
		{"tcp-listen:127.0.0.1:80,ro", `unknown option "ro" for tcp-listen (want backlog)`},
		{"tcp:127.0.0.1:0", "port 0 is only for tcp-listen, tcp needs the peer's port"},
		{"tcp:1.2.3.4:80,backlog=5", `tcp takes no options, got "backlog=5"`},
		{"tcp:bad host:80", `bad host "bad host"`},
		{"udp:h_st/x:53", `bad host "h_st/x"`},
		{"null:x", "null takes no arguments or options"},
		{"null,ro", "null takes no arguments or options"},
		{"fd:-1", `bad fd "-1": not a decimal number`},
		{"fd:", "missing fd"},
		{"fd:3,append", `unknown option "append" for fd (want ro, wo, rw)`},
		{"fd:99999999999", "bad fd 99999999999: more than 2147483647"},
		{"exec:", "empty command"},
		{"exec:   ", "empty command"},
		{"unix:/a,b", `unix takes no options, got "b"`},
		{"unix-listen:@", "empty abstract socket name"},
		{"unix:/" + strings.Repeat("x", 107), "socket path is 108 bytes, more than the 107 a sockaddr_un holds"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.spec)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error = %v, want *SpecError", tt.spec, err)
			continue
		}
		if diff := cmp.Diff(&SpecError{Spec: tt.spec, Reason: tt.reason}, se); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
}

func TestSpecErrorText(t *testing.T) {
	_, err := Parse("tcp-listen:[::1:80")
	if want := `substitute "tcp-listen:[::1:80": missing ']'`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// A hand-built Source with fields its kind does not use would not survive
// String and Parse, so Open refuses it.
func TestHandBuiltSourceChecked(t *testing.T) {
	tests := []struct {
		src    Source
		reason string
	}{
		{Source{Kind: KindNull, Path: "/x"}, "null does not take path"},
		{Source{Kind: KindTCP, Host: "h", Port: 1, Append: true}, "tcp does not take append/trunc/create/nocreate/mode"},
		{Source{Kind: KindFile, Path: "/a,b"}, `path "/a,b" contains ','`},
		{Source{Kind: KindFile, Path: "/a", Mode: 0o4755, Create: true}, "mode 04755 has bits beyond 0777"},
		{Source{Kind: "pipe"}, `unknown kind "pipe"`},
		{Source{Kind: KindFD, FD: -2}, "bad fd -2"},
		{Source{Kind: KindFile, Path: "/a", Access: 7}, "bad access 7"},
	}
	for _, tt := range tests {
		_, _, err := tt.src.Open(DefaultOpenOptions())
		var se *SpecError
		if !errors.As(err, &se) || se.Reason != tt.reason {
			t.Errorf("%#v.Open() error = %v, want reason %q", tt.src, err, tt.reason)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"file:/var/log/app.log,wo,append,create,mode=0640", "null", "tcp-listen:[::1]:0,backlog=5",
		"tcp:example.com:443", "udp:[fe80::1%eth0]:53", "unix-listen:@x", "unix:/run/a.sock",
		"fd:3,ro", "exec:cat > /tmp/x", "tcp-listen:[::1:80", "file:/x,mode=7", "tcp:h:080",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		src, err := Parse(spec)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || se.Spec != spec || se.Reason == "" {
				t.Fatalf("Parse(%q) error %#v is not a complete *SpecError", spec, err)
			}
			return
		}
		again, err := Parse(src.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", spec, src.String(), err)
		}
		if diff := cmp.Diff(src, again); diff != "" {
			t.Fatalf("Parse(%q) then String %q then Parse (-first +second):\n%s", spec, src.String(), diff)
		}
		if again.String() != src.String() {
			t.Fatalf("String not canonical: %q then %q", src.String(), again.String())
		}
	})
}

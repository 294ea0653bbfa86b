package substitute

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is the kind of a [Source]: the word before the colon in a spec.
type Kind string

// The kinds of substitute. Their spec syntax is given at [Parse].
const (
	KindFile       Kind = "file"
	KindNull       Kind = "null"
	KindTCPListen  Kind = "tcp-listen"
	KindTCP        Kind = "tcp"
	KindUDP        Kind = "udp"
	KindUnixListen Kind = "unix-listen"
	KindUnix       Kind = "unix"
	KindFD         Kind = "fd"
	KindExec       Kind = "exec"
)

// Access is the access mode a spec states with ro, wo or rw.
type Access int

const (
	// InheritAccess, the zero value, takes the access mode of the
	// checkpointed fd, so a read-write fd stays read-write (CRIU #1794).
	InheritAccess Access = iota
	ReadOnly
	WriteOnly
	ReadWrite
)

// String returns the spec option for a: "ro", "wo", "rw", or "" for InheritAccess.
func (a Access) String() string {
	switch a {
	case InheritAccess:
		return ""
	case ReadOnly:
		return "ro"
	case WriteOnly:
		return "wo"
	case ReadWrite:
		return "rw"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// flag is a's open(2) access mode; InheritAccess has none and returns -1.
func (a Access) flag() int {
	switch a {
	case ReadOnly:
		return unix.O_RDONLY
	case WriteOnly:
		return unix.O_WRONLY
	case ReadWrite:
		return unix.O_RDWR
	}
	return -1
}

// Source is a parsed substitute spec. Fields that the Kind does not use must
// be zero; [Parse] guarantees it, and Open rejects a hand-built Source that
// breaks it, so that String always round-trips.
type Source struct {
	Kind Kind
	// Path is the file or unix socket path (file, unix, unix-listen). A
	// leading '@' names a Linux abstract socket. Paths cannot contain ','.
	Path string
	// Host and Port are the address for tcp-listen, tcp and udp. Host is a
	// name or IP literal, IPv6 without brackets. Port 0 is allowed for
	// tcp-listen only: the kernel picks a port, which Opened reports.
	Host string
	Port int
	// FD is the launcher's fd that fd:N duplicates.
	FD int
	// Command is run with /bin/sh -c for exec, reading the pipe on stdin.
	Command string
	// Access is the explicit ro/wo/rw of file and fd specs.
	Access Access
	// Append, Trunc, Create and Mode are the open(2) options of a file spec.
	// A write mode creates a missing file even without Create, as a shell's
	// >> does, unless NoCreate; Create makes a read-only one create it too.
	// Mode is a created file's mode; zero means 0666. The umask applies, as
	// with open(2): the image's process's at a restart.
	Append, Trunc, Create, NoCreate bool
	Mode                            os.FileMode
	// Backlog is tcp-listen's listen(2) backlog; zero means SOMAXCONN.
	Backlog int
}

// Parse parses a substitute spec:
//
//	file:PATH[,append][,trunc][,create|nocreate][,mode=0640][,ro|wo|rw]
//	null
//	tcp-listen:HOST:PORT[,backlog=N]
//	tcp:HOST:PORT
//	udp:HOST:PORT
//	unix-listen:PATH
//	unix:PATH
//	fd:N[,ro|wo|rw]
//	exec:COMMAND
//
// An IPv6 HOST goes in brackets ("[::1]:80"); listen on all addresses with
// 0.0.0.0 or [::], since an empty host would hide which family was meant.
// PATH ends at the first ','. COMMAND is everything after "exec:", commas
// included. Errors are *[SpecError].
func Parse(spec string) (Source, error) {
	s, reason := parse(spec)
	if reason == "" {
		reason = s.check()
	}
	if reason != "" {
		return Source{}, &SpecError{Spec: spec, Reason: reason}
	}
	return s, nil
}

// argHelp says what follows the colon, for kinds whose spec lacks it.
var argHelp = map[Kind]string{
	KindFile:       "PATH",
	KindTCPListen:  "HOST:PORT",
	KindTCP:        "HOST:PORT",
	KindUDP:        "HOST:PORT",
	KindUnixListen: "PATH",
	KindUnix:       "PATH",
	KindFD:         "N",
	KindExec:       "COMMAND",
}

// options lists the options each kind accepts.
var options = map[Kind][]string{
	KindFile:      {"append", "trunc", "create", "nocreate", "mode", "ro", "wo", "rw"},
	KindTCPListen: {"backlog"},
	KindFD:        {"ro", "wo", "rw"},
}

func parse(spec string) (Source, string) {
	if spec == "" {
		return Source{}, "empty spec"
	}
	name, rest, sep := spec, "", byte(0)
	if i := strings.IndexAny(spec, ":,"); i >= 0 {
		name, sep, rest = spec[:i], spec[i], spec[i+1:]
	}
	s := Source{Kind: Kind(name)}
	if s.Kind == KindNull {
		if sep != 0 {
			return s, "null takes no arguments or options"
		}
		return s, ""
	}
	arg, ok := argHelp[s.Kind]
	if !ok {
		return s, fmt.Sprintf("unknown kind %q (want file:, null, tcp-listen:, tcp:, udp:, unix-listen:, unix:, fd: or exec:)", name)
	}
	if sep != ':' {
		return s, fmt.Sprintf("%s needs :%s", name, arg)
	}
	var opts string
	var hasOpts bool
	switch s.Kind {
	case KindExec:
		s.Command = rest
	case KindFile, KindUnix, KindUnixListen:
		s.Path, opts, hasOpts = strings.Cut(rest, ",")
		if s.Path == "" {
			return s, "empty path"
		}
	case KindFD:
		var num string
		num, opts, hasOpts = strings.Cut(rest, ",")
		n, reason := parseUint(num, "fd", math.MaxInt32)
		if reason != "" {
			return s, reason
		}
		s.FD = n
	case KindTCPListen, KindTCP, KindUDP:
		var port, reason string
		s.Host, port, opts, hasOpts, reason = splitHostPort(rest)
		if reason != "" {
			return s, reason
		}
		if s.Port, reason = parseUint(port, "port", 65535); reason != "" {
			return s, reason
		}
	}
	if hasOpts {
		if reason := s.parseOptions(opts); reason != "" {
			return s, reason
		}
	}
	return s, ""
}

// splitHostPort splits "HOST:PORT[,opts]" or "[V6]:PORT[,opts]".
func splitHostPort(rest string) (host, port, opts string, hasOpts bool, reason string) {
	if v6, ok := strings.CutPrefix(rest, "["); ok {
		end := strings.IndexByte(v6, ']')
		if end < 0 {
			return "", "", "", false, "missing ']'"
		}
		host = v6[:end]
		after, ok := strings.CutPrefix(v6[end+1:], ":")
		if !ok {
			return "", "", "", false, "missing :PORT after ']'"
		}
		if !strings.Contains(host, ":") {
			return "", "", "", false, fmt.Sprintf("brackets are for IPv6 addresses, not %q", host)
		}
		port, opts, hasOpts = strings.Cut(after, ",")
		return host, port, opts, hasOpts, ""
	}
	addr, opts, hasOpts := strings.Cut(rest, ",")
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", "", false, "missing :PORT"
	}
	host, port = addr[:i], addr[i+1:]
	if strings.Contains(host, ":") {
		return "", "", "", false, fmt.Sprintf("IPv6 address %q must be in brackets, like [::1]:80", host)
	}
	return host, port, opts, hasOpts, ""
}

// parseUint accepts plain decimal digits only: a sign or space in a port or
// fd number is a typo, and strconv would accept some of them.
func parseUint(s, what string, max int) (int, string) {
	if s == "" {
		return 0, "missing " + what
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Sprintf("bad %s %q: not a decimal number", what, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > uint64(max) {
		return 0, fmt.Sprintf("bad %s %s: more than %d", what, s, max)
	}
	return int(n), ""
}

func (s *Source) parseOptions(list string) string {
	seen := make(map[string]bool)
	for opt := range strings.SplitSeq(list, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		if key == "" {
			return fmt.Sprintf("empty option in %q", list)
		}
		known := false
		for _, o := range options[s.Kind] {
			known = known || o == key
		}
		if !known {
			if len(options[s.Kind]) == 0 {
				return fmt.Sprintf("%s takes no options, got %q", s.Kind, opt)
			}
			return fmt.Sprintf("unknown option %q for %s (want %s)", key, s.Kind, strings.Join(options[s.Kind], ", "))
		}
		if seen[key] {
			return fmt.Sprintf("option %q given twice", key)
		}
		seen[key] = true
		valued := key == "mode" || key == "backlog"
		if valued && !hasVal {
			return fmt.Sprintf("option %q needs a value, like %s=%s", key, key, map[string]string{"mode": "0640", "backlog": "128"}[key])
		}
		if !valued && hasVal {
			return fmt.Sprintf("option %q takes no value", key)
		}
		switch key {
		case "ro", "wo", "rw":
			if s.Access != InheritAccess {
				return fmt.Sprintf("conflicting %s and %s", s.Access, key)
			}
			s.Access = map[string]Access{"ro": ReadOnly, "wo": WriteOnly, "rw": ReadWrite}[key]
		case "append":
			s.Append = true
		case "trunc":
			s.Trunc = true
		case "create":
			s.Create = true
		case "nocreate":
			s.NoCreate = true
		case "mode":
			if val == "" || strings.Trim(val, "01234567") != "" {
				return fmt.Sprintf("mode %q is not octal", val)
			}
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Sprintf("mode %s has bits beyond 0777", val)
			}
			if m == 0 {
				return "mode 0 would make the file inaccessible"
			}
			s.Mode = os.FileMode(m)
		case "backlog":
			n, reason := parseUint(val, "backlog", math.MaxInt32)
			if reason != "" {
				return reason
			}
			if n == 0 {
				return "backlog must be at least 1"
			}
			s.Backlog = n
		}
	}
	return ""
}

// check validates s beyond syntax. Parse runs it too, so a hand-built Source
// gets the same diagnostics as a spec would.
func (s Source) check() string {
	if _, ok := argHelp[s.Kind]; !ok && s.Kind != KindNull {
		return fmt.Sprintf("unknown kind %q", string(s.Kind))
	}
	usesPath := s.Kind == KindFile || s.Kind == KindUnix || s.Kind == KindUnixListen
	usesAddr := s.Kind == KindTCPListen || s.Kind == KindTCP || s.Kind == KindUDP
	for _, u := range []struct {
		used, set bool
		field     string
	}{
		{usesPath, s.Path != "", "path"},
		{usesAddr, s.Host != "" || s.Port != 0, "host and port"},
		{s.Kind == KindFD, s.FD != 0, "fd"},
		{s.Kind == KindExec, s.Command != "", "command"},
		{s.Kind == KindFile || s.Kind == KindFD, s.Access != InheritAccess, "ro/wo/rw"},
		{s.Kind == KindFile, s.Append || s.Trunc || s.Create || s.NoCreate || s.Mode != 0, "append/trunc/create/nocreate/mode"},
		{s.Kind == KindTCPListen, s.Backlog != 0, "backlog"},
	} {
		if u.set && !u.used {
			return fmt.Sprintf("%s does not take %s", s.Kind, u.field)
		}
	}
	switch {
	case usesPath:
		switch {
		case s.Path == "":
			return "empty path"
		case strings.ContainsRune(s.Path, ','):
			return fmt.Sprintf("path %q contains ','", s.Path)
		case strings.ContainsRune(s.Path, 0):
			return fmt.Sprintf("path %q contains a NUL byte", s.Path)
		case s.Kind != KindFile && s.Path == "@":
			return "empty abstract socket name"
		case s.Kind != KindFile && len(s.Path) > len(unix.RawSockaddrUnix{}.Path)-1:
			return fmt.Sprintf("socket path is %d bytes, more than the %d a sockaddr_un holds", len(s.Path), len(unix.RawSockaddrUnix{}.Path)-1)
		}
	case usesAddr:
		if reason := checkHost(s.Host); reason != "" {
			return reason
		}
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Sprintf("bad port %d", s.Port)
		}
		if s.Port == 0 && s.Kind != KindTCPListen {
			return fmt.Sprintf("port 0 is only for tcp-listen, %s needs the peer's port", s.Kind)
		}
	case s.Kind == KindFD:
		if s.FD < 0 || s.FD > math.MaxInt32 {
			return fmt.Sprintf("bad fd %d", s.FD)
		}
	case s.Kind == KindExec:
		if strings.TrimSpace(s.Command) == "" {
			return "empty command"
		}
		if strings.ContainsRune(s.Command, 0) {
			return "command contains a NUL byte"
		}
	}
	if s.Access < InheritAccess || s.Access > ReadWrite {
		return fmt.Sprintf("bad access %d", int(s.Access))
	}
	if s.Access == ReadOnly && (s.Append || s.Trunc) {
		return "ro conflicts with " + map[bool]string{true: "append", false: "trunc"}[s.Append]
	}
	if s.Mode&^0o777 != 0 {
		return fmt.Sprintf("mode %#o has bits beyond 0777", uint32(s.Mode))
	}
	if s.Create && s.NoCreate {
		return "conflicting create and nocreate"
	}
	if s.Mode != 0 && s.NoCreate {
		return "mode conflicts with nocreate: it only applies to a file the open creates"
	}
	if s.Backlog < 0 {
		return fmt.Sprintf("bad backlog %d", s.Backlog)
	}
	return ""
}

// checkHost accepts host names and IPv4 literals, or IPv6 literals (which
// contain ':' and are bracketed by String). The character set is narrow on
// purpose: ',', ':' and brackets would not round-trip through a spec.
func checkHost(h string) string {
	if h == "" {
		return "empty host (use 0.0.0.0 or [::] for all addresses)"
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() {
			return fmt.Sprintf("%q is not an IPv6 address", h)
		}
		if !hostChars(a.Zone()) {
			return fmt.Sprintf("bad zone %q in %q", a.Zone(), h)
		}
		return ""
	}
	if len(h) > 253 || !hostChars(h) {
		return fmt.Sprintf("bad host %q", h)
	}
	return ""
}

func hostChars(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// String returns the spec of s, in a canonical form that [Parse] turns back
// into s.
func (s Source) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	switch s.Kind {
	case KindNull:
		return b.String()
	case KindExec:
		return b.String() + ":" + s.Command
	case KindFile, KindUnix, KindUnixListen:
		b.WriteString(":" + s.Path)
	case KindTCPListen, KindTCP, KindUDP:
		b.WriteString(":" + s.hostPort())
	case KindFD:
		b.WriteString(":" + strconv.Itoa(s.FD))
	}
	opt := func(on bool, o string) {
		if on {
			b.WriteString("," + o)
		}
	}
	opt(s.Access != InheritAccess, s.Access.String())
	opt(s.Append, "append")
	opt(s.Trunc, "trunc")
	opt(s.Create, "create")
	opt(s.NoCreate, "nocreate")
	opt(s.Mode != 0, fmt.Sprintf("mode=%04o", uint32(s.Mode)))
	opt(s.Backlog != 0, "backlog="+strconv.Itoa(s.Backlog))
	return b.String()
}

func (s Source) hostPort() string {
	h := s.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(s.Port)
}

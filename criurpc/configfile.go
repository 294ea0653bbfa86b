package criurpc

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// configOption is one line of a CRIU configuration file (criu(8),
// CONFIGURATION FILES): an option's long name without its dashes, and its
// value if the line gives one.
type configOption struct {
	line     int
	name     string
	value    string
	hasValue bool
}

// parseConfig reads a CRIU configuration file as CRIU does: one option per
// line ("name", "name value" or "name=value"), a value with spaces in
// double quotes (\" inside them is a quote), '#' starting a comment.
func parseConfig(data []byte) ([]configOption, error) {
	var opts []configOption
	for i, line := range strings.Split(string(data), "\n") {
		o := configOption{line: i + 1}
		line = strings.Trim(line, " \t\r")
		if c := strings.IndexByte(line, '#'); c >= 0 && !strings.Contains(line[:c], "\"") {
			line = strings.TrimRight(line[:c], " \t")
		}
		if line == "" {
			continue
		}
		word, rest := line, ""
		if c := strings.IndexAny(line, " \t"); c >= 0 {
			word, rest = line[:c], strings.TrimLeft(line[c:], " \t")
		}
		o.name, o.value, o.hasValue = strings.Cut(word, "=")
		switch {
		case rest == "":
		case o.hasValue:
			return nil, fmt.Errorf("line %d: %s has two values", o.line, o.name)
		case rest[0] == '"':
			value, after, err := quoted(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", o.line, err)
			}
			after = strings.TrimLeft(after, " \t")
			if after != "" && after[0] != '#' {
				return nil, fmt.Errorf("line %d: %q after the value of %s", o.line, after, o.name)
			}
			o.value, o.hasValue = value, true
		case strings.ContainsAny(rest, " \t"):
			return nil, fmt.Errorf("line %d: %q: a value with spaces goes in double quotes", o.line, rest)
		default:
			o.value, o.hasValue = rest, true
		}
		o.name = strings.TrimLeft(o.name, "-")
		if o.name == "" {
			return nil, fmt.Errorf("line %d: no option name", o.line)
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// quoted takes the double-quoted value s starts with and returns it and
// what follows it.
func quoted(s string) (value, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		case s[i] == '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", fmt.Errorf("no closing quote in %s", s)
}

// configFields names the criu_opts field of the CRIU options whose field is
// not the option's name with underscores for its dashes.
var configFields = map[string]protoreflect.Name{
	"tree":            "pid",
	"verbosity":       "log_level",
	"prev-images-dir": "parent_img",
	"skip-in-flight":  "tcp_skip_in_flight",
	"restore-sibling": "rst_sibling",
	"ext-mount-map":   "ext_mnt",
	"cgroup-root":     "cg_root",
	"irmap-scan-path": "irmap_scan_paths",
	"enable-fs":       "enable_fs",
	"skip-mnt":        "skip_mnt",
	"join-ns":         "join_ns",
	"inherit-fd":      "inherit_fd",
	"lazy-pages":      "lazy_pages",
}

// notInRequests are the CRIU options that have no criu_opts field: CRIU's
// RPC takes them from the request, or not at all.
var notInRequests = map[string]string{
	"work-dir":         "the work directory is the request's (work_dir_fd)",
	"output":           "the log is the request's log_file",
	"config":           "a configuration file cannot name another",
	"pidfile":          "a restore's pid is in its answer",
	"restore-detached": "a restore through RPC always lets the tree go",
	"daemon":           "a restore through RPC always lets the tree go",
	"images-dir":       "the images directory is the request's (images_dir_fd)",
}

// applyConfig sets the criu_opts field of option o in opts, as CRIU's
// command line would. A boolean option's "no-" form sets it false.
func applyConfig(opts *rpcpb.CriuOpts, o configOption) error {
	if why, ok := notInRequests[o.name]; ok {
		return fmt.Errorf("not taken from a configuration file by crsub: %s", why)
	}
	m := opts.ProtoReflect()
	fields := m.Descriptor().Fields()
	name, negated := o.name, false
	fd := fieldOf(fields, name)
	if fd == nil {
		if n, ok := strings.CutPrefix(name, "no-"); ok {
			if fd = fieldOf(fields, n); fd != nil && fd.Kind() == protoreflect.BoolKind {
				name, negated = n, true
			} else {
				fd = nil
			}
		}
	}
	if fd == nil {
		return fmt.Errorf("unknown option (or one without a place in an RPC request)")
	}
	if name == "manage-cgroups" && !negated {
		// An optional mode, as on CRIU's command line.
		m.Set(fd, protoreflect.ValueOfBool(true))
		if !o.hasValue {
			return nil
		}
		return setEnum(m, fields.ByName("manage_cgroups_mode"), o.value)
	}
	if fd.Kind() == protoreflect.BoolKind {
		if o.hasValue {
			return fmt.Errorf("takes no value (%q given)", o.value)
		}
		m.Set(fd, protoreflect.ValueOfBool(!negated))
		return nil
	}
	if negated {
		return fmt.Errorf("unknown option")
	}
	switch name {
	case "empty-ns":
		if o.value != "net" {
			return fmt.Errorf("%q: only net can be left empty", o.value)
		}
		m.Set(fd, protoreflect.ValueOfUint32(unix.CLONE_NEWNET))
		return nil
	}
	if !o.hasValue {
		return fmt.Errorf("needs a value")
	}
	if fd.IsList() {
		l := m.Mutable(fd).List()
		if fd.Kind() == protoreflect.StringKind {
			l.Append(protoreflect.ValueOfString(o.value))
			return nil
		}
		e := l.NewElement()
		if err := listEntry(e.Message(), name, o.value); err != nil {
			return err
		}
		l.Append(e)
		return nil
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		m.Set(fd, protoreflect.ValueOfString(o.value))
	case protoreflect.EnumKind:
		return setEnum(m, fd, o.value)
	case protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Uint64Kind:
		n, err := parseSize(o.value)
		if err != nil {
			return err
		}
		switch fd.Kind() {
		case protoreflect.Int32Kind:
			m.Set(fd, protoreflect.ValueOfInt32(int32(n)))
		case protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(uint32(n)))
		case protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(n))
		default:
			m.Set(fd, protoreflect.ValueOfUint64(uint64(n)))
		}
	default:
		return fmt.Errorf("not taken from a configuration file by crsub")
	}
	return nil
}

func fieldOf(fields protoreflect.FieldDescriptors, option string) protoreflect.FieldDescriptor {
	if f, ok := configFields[option]; ok {
		return fields.ByName(f)
	}
	return fields.ByName(protoreflect.Name(strings.ReplaceAll(option, "-", "_")))
}

// setEnum sets enum field fd by its value's name, in any case ("nftables",
// "soft").
func setEnum(m protoreflect.Message, fd protoreflect.FieldDescriptor, value string) error {
	v := fd.Enum().Values().ByName(protoreflect.Name(strings.ToUpper(value)))
	if v == nil {
		return fmt.Errorf("%q is not one of its values", value)
	}
	m.Set(fd, protoreflect.ValueOfEnum(v.Number()))
	return nil
}

// listEntry fills one entry of a list of messages from its command-line
// form.
func listEntry(e protoreflect.Message, option, value string) error {
	set := func(field, v string) {
		e.Set(e.Descriptor().Fields().ByName(protoreflect.Name(field)), protoreflect.ValueOfString(v))
	}
	switch option {
	case "ext-mount-map":
		key, val, ok := strings.Cut(value, ":")
		if !ok {
			return fmt.Errorf("%q is not KEY:VAL", value)
		}
		set("key", key)
		set("val", val)
	case "inherit-fd":
		in, err := ParseInheritFd(value)
		if err != nil {
			return err
		}
		e.Set(e.Descriptor().Fields().ByName("key"), protoreflect.ValueOfString(in.GetKey()))
		e.Set(e.Descriptor().Fields().ByName("fd"), protoreflect.ValueOfInt32(in.GetFd()))
	case "cgroup-root":
		r := ParseCgroupRoot(value)
		if r.Ctrl != nil {
			set("ctrl", r.GetCtrl())
		}
		set("path", r.GetPath())
	case "join-ns":
		ns, file, ok := strings.Cut(value, ":")
		if !ok {
			return fmt.Errorf("%q is not NS:FILE", value)
		}
		set("ns", ns)
		set("ns_file", file)
	default:
		return fmt.Errorf("not taken from a configuration file by crsub")
	}
	return nil
}

// ParseInheritFd parses CRIU's --inherit-fd fd[N]:KEY: fd N of the
// runtime takes the place of the image's file KEY.
func ParseInheritFd(spec string) (*rpcpb.InheritFd, error) {
	n, key, ok := strings.Cut(spec, ":")
	num, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(n, "fd["), "]"))
	if !ok || !strings.HasPrefix(n, "fd[") || err != nil || num < 0 {
		return nil, fmt.Errorf("%q is not fd[N]:KEY", spec)
	}
	return &rpcpb.InheritFd{Key: &key, Fd: ptr(int32(num))}, nil
}

// ParseCgroupRoot parses CRIU's --cgroup-root [CONTROLLER:]PATH; without
// a controller it is every hierarchy's.
func ParseCgroupRoot(spec string) *rpcpb.CgroupRoot {
	if ctrl, path, ok := strings.Cut(spec, ":"); ok {
		return &rpcpb.CgroupRoot{Ctrl: &ctrl, Path: &path}
	}
	return &rpcpb.CgroupRoot{Path: &spec}
}

// parseSize parses a number with an optional K, M or G suffix (CRIU's
// ghost-limit).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return n * mult, nil
}

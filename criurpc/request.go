package criurpc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/crsub/crsub/criurpc/rpcpb"
)

// Request is what the criu_opts of a request ask for, in crsub's terms.
// Every field a runtime sets is either taken into it or refused by name
// (see rules); fields that change nothing for crsub are accepted and
// dropped, each for the reason its rule gives.
type Request struct {
	Type rpcpb.CriuReqType
	// Pid is the root of the tree to checkpoint.
	Pid int
	// ImagesDirFd and WorkDirFd are fds of the peer (the runtime), -1
	// when not given; ImagesDir is a path, used when ImagesDirFd is not.
	ImagesDirFd int
	ImagesDir   string
	WorkDirFd   int
	// LogFile is a name in the work directory, or any path if a CRIU
	// configuration file gave it (logPath); LogLevel is CRIU's (0 none
	// … 4 debug).
	LogFile     string
	logPath     bool
	LogLevel    int
	LogToStderr bool
	// Notify asks for a NOTIFY message at each phase, which the runtime
	// acknowledges before the phase goes on.
	Notify bool
	// PageServer is where a dump sends its image (and keeps a copy,
	// SentImageName), or where a page server takes one from.
	PageServer *PageServer
	// ActionScripts are programs a CRIU configuration file names
	// (action-script), run at each phase as Config.ActionScripts are.
	ActionScripts []string
	// LeaveRunning lets the tree run on after a checkpoint.
	LeaveRunning bool
	// ParentImage is the directory, relative to the images directory, of
	// the earlier images only the changed pages are stored against.
	ParentImage string
	// Timeout bounds a checkpoint; 0 means none.
	Timeout time.Duration
	// DisplayStats logs the statistics of a checkpoint or restore.
	DisplayStats bool
	// Root is the root directory to restore into.
	Root string
	// Sibling restores the tree as a child of the runtime.
	Sibling bool
	// CgroupRoots are the cgroups that replace the root process's.
	CgroupRoots []CgroupRoot
	// InheritFds give the runtime's fds (passed to crsub at those
	// numbers) in place of the image's files their keys name.
	InheritFds []InheritFd
	// JoinNamespaces are namespaces to restore the tree into.
	JoinNamespaces []JoinNamespace
	// OrphanPtsMaster asks for a new terminal in place of one the tree
	// used whose master was outside it, its master sent to the runtime.
	OrphanPtsMaster bool
	// ExtMounts are the ext_mnt entries of a restore: where, outside, the
	// mount at a path of the tree's mount namespace comes from now.
	ExtMounts []ExtMount
	// Veths are veth pairs to make for the restore, their inner ends
	// taking the places of the image's links (veths, external
	// veth[IN]:OUT); Links are links of crsub's network namespace that
	// do (external netdev[IN]:HOSTLINK), by the image's link names.
	Veths []VethPair
	Links map[string]string
}

// VethPair is a veths entry, or an external veth[In]:Out[@Bridge]: a
// veth pair whose end named Out stays on the host (in Bridge, up, if one
// is named) and whose other end becomes the image's link In.
type VethPair struct{ In, Out, Bridge string }

// ExtMount is an ext_mnt entry of a restore: Key is the mount point in
// the tree's mount namespace (what runc named the mount at the
// checkpoint), Val the path outside to bind-mount there.
type ExtMount struct{ Key, Val string }

// CgroupRoot is a cg_root entry: the cgroup that replaces the root
// process's in the hierarchy of controller Ctrl ("" for the unified one,
// as runc names it), or in every hierarchy without an entry of its own if
// Every (no controller named, as CRIU's --cgroup-root PATH).
type CgroupRoot struct {
	Ctrl, Path string
	Every      bool
}

// InheritFd is an inherit_fd entry.
type InheritFd struct {
	Key string
	Fd  int
}

// JoinNamespace is a join_ns entry.
type JoinNamespace struct{ Ns, File string }

// RefusedError is the error of a request field crsub does not honour.
type RefusedError struct {
	Field  string // as rpc.proto names it: "lazy_pages", "ps"
	Reason string
}

func (e *RefusedError) Error() string { return e.Field + ": " + e.Reason }

// kind says which of a rule's sides applies to a request type.
type kind int

const (
	forDump kind = iota // DUMP, PRE_DUMP, SINGLE_PRE_DUMP
	forRestore
)

// apply takes a set field into the request, or refuses it.
type apply func(r *Request, v protoreflect.Value) error

// rule is what crsub does with one criu_opts field, on each side.
type rule struct{ dump, restore apply }

func both(f apply) rule { return rule{f, f} }

// accept changes nothing: the rule's comment says why crsub honours the
// field without doing anything for it.
func accept(*Request, protoreflect.Value) error { return nil }

// refuse refuses a field set to anything but its zero value (false, 0,
// "", an empty list): a field a runtime always sends, but off, passes.
func refuse(reason string) apply {
	return func(_ *Request, v protoreflect.Value) error {
		if isZero(v) {
			return nil
		}
		return &RefusedError{Reason: reason}
	}
}

func isZero(v protoreflect.Value) bool {
	switch x := v.Interface().(type) {
	case bool:
		return !x
	case int32:
		return x == 0
	case int64:
		return x == 0
	case uint32:
		return x == 0
	case uint64:
		return x == 0
	case string:
		return x == ""
	case protoreflect.List:
		return x.Len() == 0
	}
	return false // a message, an enum: its presence asks for something
}

func each(v protoreflect.Value, f func(protoreflect.Message)) {
	l := v.List()
	for i := range l.Len() {
		f(l.Get(i).Message())
	}
}

func str(m protoreflect.Message, name protoreflect.Name) string {
	return m.Get(m.Descriptor().Fields().ByName(name)).String()
}

// rules holds a rule for every criu_opts field of CRIU v4.2. A field set
// in a request without a rule for its side is refused by name, and so is
// one this crsub does not know (a newer CRIU's).
var rules = map[protoreflect.Name]rule{
	"images_dir_fd": both(func(r *Request, v protoreflect.Value) error { r.ImagesDirFd = int(v.Int()); return nil }),
	"images_dir":    both(func(r *Request, v protoreflect.Value) error { r.ImagesDir = v.String(); return nil }),
	"work_dir_fd":   both(func(r *Request, v protoreflect.Value) error { r.WorkDirFd = int(v.Int()); return nil }),
	"log_level":     both(func(r *Request, v protoreflect.Value) error { r.LogLevel = int(v.Int()); return nil }),
	"log_file": both(func(r *Request, v protoreflect.Value) error {
		if strings.Contains(v.String(), "/") {
			return &RefusedError{Reason: fmt.Sprintf("%q: No subdirs are allowed in log_file name (the log is written in the work directory, as CRIU's)", v.String())}
		}
		r.LogFile = v.String()
		return nil
	}),
	"log_to_stderr":  both(func(r *Request, v protoreflect.Value) error { r.LogToStderr = v.Bool(); return nil }),
	"notify_scripts": both(func(r *Request, v protoreflect.Value) error { r.Notify = v.Bool(); return nil }),
	"display_stats":  both(func(r *Request, v protoreflect.Value) error { r.DisplayStats = v.Bool(); return nil }),
	"timeout": both(func(r *Request, v protoreflect.Value) error {
		r.Timeout = time.Duration(v.Uint()) * time.Second
		return nil
	}),

	"pid": {dump: func(r *Request, v protoreflect.Value) error { r.Pid = int(v.Int()); return nil },
		restore: accept}, // CRIU ignores it on restore too
	"leave_running": {dump: func(r *Request, v protoreflect.Value) error { r.LeaveRunning = v.Bool(); return nil },
		restore: accept},
	"parent_img": {dump: func(r *Request, v protoreflect.Value) error { r.ParentImage = v.String(); return nil },
		// The image names its parent, relative to its directory.
		restore: accept},
	// crsub's parent images are compared page by page, whether memory
	// was tracked or not.
	"track_mem":     {dump: accept, restore: accept},
	"pre_dump_mode": {dump: accept, restore: accept},

	// What CRIU must be allowed to dump, crsub always dumps: established
	// TCP connections (with TCP repair), unix sockets and pipes whose
	// other end is outside the tree (recorded as external: restoring them
	// needs an inherit_fd), processes whose session or terminal is outside
	// it, file locks, deleted files (their contents are in the image, no
	// link is made), inotify watches (crsub finds their paths itself).
	"tcp_established":     both(accept),
	"ext_unix_sk":         both(accept),
	"unix_sk_ino":         both(accept),
	"shell_job":           both(accept),
	"file_locks":          both(accept),
	"link_remap":          both(accept),
	"ghost_limit":         both(accept),
	"force_irmap":         both(accept),
	"weak_sysctls":        both(accept),
	"skip_file_rwx_check": both(accept),
	// Device files are opened again by their path in any case.
	"evasive_devices": both(accept),
	// The image's FPU state layout is always checked against this CPU's.
	"cpu_cap": both(accept),
	// crsub freezes the tree with ptrace, task by task; the cgroup is not
	// frozen, and its tasks outside the tree are not checkpointed.
	"freeze_cgroup": {dump: accept, restore: accept},
	// The engine finds the mounts a tree's mount namespace has from
	// outside itself and records where they come from; on restore, an
	// entry says where one comes from now (a container restored under
	// another name has its files elsewhere).
	"ext_mnt": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error {
			each(v, func(m protoreflect.Message) {
				r.ExtMounts = append(r.ExtMounts, ExtMount{Key: str(m, "key"), Val: str(m, "val")})
			})
			return nil
		}},
	// crsub holds the tree's TCP connections still with nftables while it
	// works, whichever method is asked; a caller that asks to skip the
	// lock (it locks them itself, or the tree has none) loses nothing by
	// it: the lock is crsub's own table, gone when crsub is done.
	"network_lock": both(accept),
	"manage_cgroups": both(func(_ *Request, v protoreflect.Value) error {
		if !v.Bool() {
			return &RefusedError{Reason: "crsub always records the tree's cgroups and puts it back in them (CRIU's soft mode)"}
		}
		return nil
	}),
	"manage_cgroups_mode": both(func(_ *Request, v protoreflect.Value) error {
		switch m := rpcpb.CriuCgMode(v.Enum()); m {
		case rpcpb.CriuCgMode_SOFT, rpcpb.CriuCgMode_DEFAULT:
			return nil
		default:
			return &RefusedError{Reason: fmt.Sprintf("mode %s: crsub records the tree's cgroups and puts it back in them, making missing ones, without their properties (CRIU's soft mode, the default)", m)}
		}
	}),
	"cg_root": {dump: refuse("crsub records the tree's cgroups as they are"),
		restore: func(r *Request, v protoreflect.Value) error {
			each(v, func(m protoreflect.Message) {
				every := !m.Has(m.Descriptor().Fields().ByName("ctrl"))
				r.CgroupRoots = append(r.CgroupRoots, CgroupRoot{Ctrl: str(m, "ctrl"), Path: str(m, "path"), Every: every})
			})
			return nil
		}},
	"root": {dump: accept, // the engine finds the tree's root itself
		restore: func(r *Request, v protoreflect.Value) error { r.Root = v.String(); return nil }},
	"rst_sibling": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error { r.Sibling = v.Bool(); return nil }},
	"inherit_fd": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error {
			each(v, func(m protoreflect.Message) {
				r.InheritFds = append(r.InheritFds, InheritFd{Key: str(m, "key"), Fd: int(m.Get(m.Descriptor().Fields().ByName("fd")).Int())})
			})
			return nil
		}},
	"join_ns": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error {
			each(v, func(m protoreflect.Message) {
				r.JoinNamespaces = append(r.JoinNamespaces, JoinNamespace{Ns: str(m, "ns"), File: str(m, "ns_file")})
			})
			return nil
		}},
	"orphan_pts_master": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error { r.OrphanPtsMaster = v.Bool(); return nil }},
	"external": {dump: external(forDump), restore: external(forRestore)},
	// As for CRIU, the pairs are made on restore; a dump records the
	// tree's links whatever the runtime will make of them.
	"veths": {dump: accept,
		restore: func(r *Request, v protoreflect.Value) error {
			var err error
			each(v, func(m protoreflect.Message) {
				if err == nil {
					err = r.addVeth(str(m, "if_in"), str(m, "if_out"))
				}
			})
			return err
		}},
	// runc always asks for the network namespace to be left empty
	// (CLONE_NEWNET: "runc doesn't manage network devices"), and CRIU
	// then restores a bare one, its loopback down. crsub records the
	// namespace and restores it as it was, loopback up; one the runtime
	// gives (inherit_fd, join_ns) is used as it is.
	"empty_ns": both(func(_ *Request, v protoreflect.Value) error {
		if v.Uint()&^unix.CLONE_NEWNET != 0 {
			return &RefusedError{Reason: fmt.Sprintf("%#x: only a network namespace (CLONE_NEWNET) can be left empty, as with CRIU", v.Uint())}
		}
		return nil
	}),
	// Read before the other fields (withConfigFile), whose values it
	// overrides.
	"config_file": both(accept),

	"auto_ext_mnt":           both(refuse("crsub does not checkpoint mount namespaces yet")),
	"ext_sharing":            both(refuse("crsub does not checkpoint mount namespaces yet")),
	"ext_masters":            both(refuse("crsub does not checkpoint mount namespaces yet")),
	"skip_mnt":               both(refuse("crsub does not checkpoint mount namespaces yet")),
	"enable_fs":              both(refuse("crsub does not checkpoint mount namespaces yet")),
	"mntns_compat_mode":      both(refuse("crsub does not checkpoint mount namespaces yet")),
	"irmap_scan_paths":       both(refuse("crsub finds inotify watch paths itself")),
	"cgroup_props":           both(refuse("crsub does not record or restore cgroup properties")),
	"cgroup_props_file":      both(refuse("crsub does not record or restore cgroup properties")),
	"cgroup_dump_controller": both(refuse("crsub records every hierarchy the tree is in")),
	"cgroup_yard":            both(refuse("crsub reaches cgroup hierarchies through mounts of its own")),
	"tcp_skip_in_flight":     both(refuse("crsub restores connections waiting to be accepted whose clients are in the tree, and fails on others; it drops none")),
	"tcp_close":              both(refuse("crsub restores TCP connections; it does not close them")),
	"ps": {dump: pageServerRule,
		restore: refuse("a restore reads its image from the images directory, where the page server put it")},
	"lazy_pages":        both(refuse("crsub restores every page before the tree runs; it has no lazy pages")),
	"status_fd":         both(refuse("the answer to a page server request says it runs, with its pid")),
	"auto_dedup":        both(refuse("crsub keeps parent images whole")),
	"exec_cmd":          both(refuse("crsub runs no command in place of itself after a restore")),
	"lsm_profile":       both(refuse("crsub does not change the tree's LSM profile")),
	"lsm_mount_context": both(refuse("crsub does not change mounts' LSM context")),
	"tls":               both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"tls_cacert":        both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"tls_cacrl":         both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"tls_cert":          both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"tls_key":           both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"tls_no_cn_verify":  both(refuse("crsub's page server does not talk TLS: give it a socket (fd) the runtime secured")),
	"pidfd_store_sk":    both(refuse("crsub does not keep pidfds between pre-dumps")),
	"unprivileged":      both(refuse("crsub needs CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_CHECKPOINT_RESTORE")),
	"leave_stopped":     both(refuse("crsub kills the tree after a checkpoint or lets it run; it cannot leave it stopped")),
}

// external takes CRIU's external-resource keys ("mnt[KEY]:VAL",
// "net[INODE]:KEY", "tty[RDEV:DEV]", "veth[IN]:OUT", …) by their kind.
func external(side kind) apply {
	return func(r *Request, v protoreflect.Value) error {
		l := v.List()
		for i := range l.Len() {
			key := l.Get(i).String()
			what, rest, ok := strings.Cut(key, "[")
			if !ok {
				return &RefusedError{Reason: fmt.Sprintf("%q is not KIND[ID]…", key)}
			}
			switch {
			case what == "mnt":
				// As ext_mnt: the engine records where a mount from
				// outside comes from without being told.
			case side == forDump && (what == "net" || what == "pid"):
				// A namespace the runtime joined by path: the engine
				// records it as any other, and a restore uses the one
				// the runtime gives back (inherit_fd, join_ns) instead
				// of making it (not a pid namespace: refused there).
			case side == forDump && (what == "file" || what == "unix" || what == "tty" || what == "dev"):
				// crsub records a file whose other side is outside the
				// tree as external without being told.
			case side == forDump && (what == "veth" || what == "netdev"):
				// CRIU reads these only on restore; a dump records
				// the tree's links as they are.
			case what == "veth" || what == "netdev":
				in, out, ok := strings.Cut(rest, "]:")
				if !ok {
					return &RefusedError{Reason: fmt.Sprintf("%q is not %s[IFNAME]:OUTNAME", key, what)}
				}
				if what == "veth" {
					if err := r.addVeth(in, out); err != nil {
						return err
					}
					continue
				}
				if err := r.addLink(in, out); err != nil {
					return err
				}
			default:
				return &RefusedError{Reason: fmt.Sprintf("%q: crsub does not handle external %s resources here yet", key, what)}
			}
		}
		return nil
	}
}

// addVeth takes a veth pair to make, its host end out ("NAME@BRIDGE" puts
// it in a bridge, as CRIU's), its other end the image's link in.
func (r *Request) addVeth(in, out string) error {
	out, bridge, _ := strings.Cut(out, "@")
	for _, n := range []string{in, out} {
		if err := linkName(n); err != nil {
			return &RefusedError{Reason: fmt.Sprintf("veth %s:%s: %v", in, out, err)}
		}
	}
	if bridge != "" {
		if err := linkName(bridge); err != nil {
			return &RefusedError{Reason: fmt.Sprintf("veth %s:%s bridge: %v", in, out, err)}
		}
	}
	if err := r.claimLink(in); err != nil {
		return err
	}
	for _, p := range r.Veths {
		if p.Out == out {
			return &RefusedError{Reason: fmt.Sprintf("veth %s:%s: %s is the host end of %s already", in, out, out, p.In)}
		}
	}
	r.Veths = append(r.Veths, VethPair{In: in, Out: out, Bridge: bridge})
	return nil
}

// addLink takes a host link to move in as the image's link in.
func (r *Request) addLink(in, host string) error {
	for _, n := range []string{in, host} {
		if err := linkName(n); err != nil {
			return &RefusedError{Reason: fmt.Sprintf("netdev %s:%s: %v", in, host, err)}
		}
	}
	if err := r.claimLink(in); err != nil {
		return err
	}
	if r.Links == nil {
		r.Links = map[string]string{}
	}
	r.Links[in] = host
	return nil
}

// claimLink refuses a link of the image given twice.
func (r *Request) claimLink(in string) error {
	_, linked := r.Links[in]
	if linked || slices.ContainsFunc(r.Veths, func(p VethPair) bool { return p.In == in }) {
		return &RefusedError{Reason: fmt.Sprintf("link %s is given twice", in)}
	}
	return nil
}

// linkName checks a network interface name as the kernel would.
func linkName(n string) error {
	switch {
	case n == "":
		return errors.New("an empty interface name")
	case len(n) >= unix.IFNAMSIZ:
		return fmt.Errorf("%q is longer than an interface name may be (%d bytes)", n, unix.IFNAMSIZ-1)
	case strings.ContainsAny(n, "/: \t\n") || n == "." || n == "..":
		return fmt.Errorf("%q is not an interface name", n)
	}
	return nil
}

// ParseRequest takes a request's options into a Request, refusing by name
// every field crsub does not honour and every field it does not know.
func ParseRequest(t rpcpb.CriuReqType, opts *rpcpb.CriuOpts) (*Request, error) {
	r := &Request{Type: t, ImagesDirFd: -1, WorkDirFd: -1, LogLevel: 2}
	if opts == nil {
		return r, nil
	}
	side := forDump
	if t == rpcpb.CriuReqType_RESTORE {
		side = forRestore
	}
	if err := unknownFields("criu_opts", opts.ProtoReflect().GetUnknown()); err != nil {
		return nil, err
	}
	var fileOnly configOnly
	if path := opts.GetConfigFile(); path != "" {
		var err error
		if opts, fileOnly, err = withConfigFile(t, opts, path); err != nil {
			return nil, err
		}
	}
	var err error
	opts.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		ru, ok := rules[fd.Name()]
		f := ru.dump
		if side == forRestore {
			f = ru.restore
		}
		if !ok || f == nil {
			err = &RefusedError{Field: string(fd.Name()), Reason: "not supported by crsub"}
			return false
		}
		if e := f(r, v); e != nil {
			if re, ok := e.(*RefusedError); ok {
				re.Field = string(fd.Name())
			}
			err = e
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if fileOnly.logPath != "" {
		r.LogFile, r.logPath = fileOnly.logPath, true
	}
	r.ActionScripts = fileOnly.actionScripts
	// The default of a required field a runtime always sends: -1 (none).
	if r.ImagesDirFd < -1 {
		return nil, &RefusedError{Field: "images_dir_fd", Reason: fmt.Sprintf("%d is not an fd", r.ImagesDirFd)}
	}
	return r, nil
}

// configOnly is what a CRIU configuration file may set that no criu_opts
// field holds: a log file given as a path, which a request's log_file may
// not be (the file is the administrator's, not the runtime's), and action
// scripts.
type configOnly struct {
	logPath       string
	actionScripts []string
}

// withConfigFile returns opts with the options of the CRIU configuration
// file at path over them, as CRIU takes a request's config_file (after the
// request's fields, which it overrides), and what the file sets that no
// field holds.
func withConfigFile(t rpcpb.CriuReqType, opts *rpcpb.CriuOpts, path string) (*rpcpb.CriuOpts, configOnly, error) {
	merged := proto.Clone(opts).(*rpcpb.CriuOpts)
	merged.ConfigFile = nil
	file, only, err := readConfig(t, path)
	if err != nil {
		return nil, only, err
	}
	proto.Merge(merged, file)
	return merged, only, nil
}

// readConfig reads the CRIU configuration file at path into the options
// of a request of type t, and what it sets that no field holds; a missing
// file sets nothing (runc names /etc/criu/runc.conf whether it exists or
// not, and CRIU skips a missing one). Each option is refused or taken as
// its field would be, the refusal naming the file, line and option.
func readConfig(t rpcpb.CriuReqType, path string) (*rpcpb.CriuOpts, configOnly, error) {
	var only configOnly
	refused := func(format string, a ...any) error {
		return &RefusedError{Field: "config_file", Reason: path + ": " + fmt.Sprintf(format, a...)}
	}
	file := &rpcpb.CriuOpts{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return file, only, nil
	}
	if err != nil {
		return nil, only, refused("%v", err)
	}
	options, err := parseConfig(data)
	if err != nil {
		return nil, only, refused("%v", err)
	}
	for _, o := range options {
		switch o.name {
		case "log-file", "o", "action-script":
			if !o.hasValue || o.value == "" {
				return nil, only, refused("line %d: %s needs a value", o.line, o.name)
			}
			if o.name == "action-script" {
				only.actionScripts = append(only.actionScripts, o.value)
			} else {
				only.logPath = o.value
			}
			continue
		}
		one := &rpcpb.CriuOpts{}
		err := applyConfig(one, o)
		if err == nil {
			_, err = ParseRequest(t, one)
		}
		if err != nil {
			return nil, only, refused("line %d: %s: %v", o.line, o.name, err)
		}
		proto.Merge(file, one)
	}
	return file, only, nil
}

// DefaultConfigFiles are the CRIU configuration files CRIU reads beneath
// every request and command line, in its order: /etc/criu/default.conf
// and $HOME/.criu/default.conf (unless noDefault, criu's
// --no-default-config), and $CRIU_CONFIG_FILE.
func DefaultConfigFiles(noDefault bool) []string {
	var files []string
	if !noDefault {
		files = append(files, "/etc/criu/default.conf")
		if home := os.Getenv("HOME"); home != "" {
			files = append(files, filepath.Join(home, ".criu", "default.conf"))
		}
	}
	if env := os.Getenv("CRIU_CONFIG_FILE"); env != "" {
		files = append(files, env)
	}
	return files
}

// withDefaults puts the options of configuration files beneath a
// request's: a field the request sets is the request's.
func withDefaults(t rpcpb.CriuReqType, opts *rpcpb.CriuOpts, files []string) (*rpcpb.CriuOpts, configOnly, error) {
	var only configOnly
	base := &rpcpb.CriuOpts{}
	for _, path := range files {
		file, o, err := readConfig(t, path)
		if err != nil {
			return nil, only, err
		}
		proto.Merge(base, file)
		if o.logPath != "" {
			only.logPath = o.logPath
		}
		only.actionScripts = append(only.actionScripts, o.actionScripts...)
	}
	if opts != nil {
		proto.Merge(base, opts)
	}
	return base, only, nil
}

// CheckConfigFiles reads the configuration files as a request would,
// for a server to refuse to start with one it cannot read, as CRIU does.
func CheckConfigFiles(files []string) error {
	_, _, err := withDefaults(rpcpb.CriuReqType_DUMP, nil, files)
	return err
}

// unknownFields refuses the fields of a message that rpc.proto does not
// have, naming them by number.
func unknownFields(msg string, raw protoreflect.RawFields) error {
	for len(raw) > 0 {
		num, _, n := protowire.ConsumeField(raw)
		if n < 0 {
			return fmt.Errorf("%s: %w", msg, protowire.ParseError(n))
		}
		return &RefusedError{Field: fmt.Sprintf("%s field %d", msg, num), Reason: "unknown to crsub (a newer CRIU's?)"}
	}
	return nil
}

package procfs

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FdInfo is /proc/PID/fdinfo/FD. The common fields are always present; the
// pointer and slice fields are set only for the kind of file that prints
// them. Any line this parser does not understand is kept in Extra, so a new
// kernel's additions are not silently lost.
type FdInfo struct {
	Pos   int64
	Flags uint32 // open(2) flags; printed in octal
	MntID int    // 0 for files on kernel-internal mounts (memfd, shmem)
	Ino   uint64

	Epoll    []EpollWatch
	Eventfd  *Eventfd
	Timerfd  *Timerfd
	Signalfd *Signalfd
	Inotify  []InotifyWatch
	Fanotify *Fanotify
	Pidfd    *Pidfd
	// Locks holds each "lock:" line after the tab, as /proc/locks prints it,
	// e.g. "1: POSIX  ADVISORY  WRITE 3889 fe:00:9978371 0 EOF".
	Locks []string
	// Extra maps the key of every other "key: value" line to its values,
	// white space trimmed, in file order (e.g. "scm_fds", "pending", "API");
	// lines with no colon at all are kept whole under the key "", and
	// fanotify lines of an unknown mark type under "fanotify".
	Extra map[string][]string
}

// EpollWatch is one "tfd:" line: a file registered with an epoll instance.
// TFD is the fd number at registration time and goes stale after the target
// dups and closes it; Ino and Dev identify the file itself.
type EpollWatch struct {
	TFD    int
	Events uint32
	Data   uint64
	Pos    int64
	Ino    uint64
	Dev    uint64 // unix.Mkdev encoding
}

// Eventfd is the state of an eventfd.
type Eventfd struct {
	Count     uint64
	ID        int
	Semaphore bool
}

// Timerfd is the state of a timerfd at the moment fdinfo was read; Value is
// the time left, and stays stale for an expired periodic timer until someone
// reads or timerfd_gettime()s it.
type Timerfd struct {
	ClockID      int
	Ticks        uint64
	SettimeFlags int // TFD_TIMER_* flags; printed in octal
	Value        unix.Timespec
	Interval     unix.Timespec
}

// Signalfd is the signal mask of a signalfd (bit n-1 is signal n).
type Signalfd struct {
	Sigmask uint64
}

// FileHandle is a name_to_handle_at(2) handle as fdinfo prints it; it is
// absent when the filesystem cannot encode one.
type FileHandle struct {
	Type   int32
	Handle []byte
}

// InotifyWatch is one "inotify" line.
type InotifyWatch struct {
	WD          int
	Ino         uint64
	Dev         uint64 // unix.Mkdev encoding
	Mask        uint32
	IgnoredMask uint32
	Handle      *FileHandle
}

// Fanotify is the group settings and marks of a fanotify fd.
type Fanotify struct {
	Flags      uint32 // fanotify_init flags
	EventFlags uint32 // fanotify_init event_f_flags (open(2) flags)
	Marks      []FanotifyMark
}

// FanotifyMarkKind says what a fanotify mark is attached to.
type FanotifyMarkKind uint8

const (
	FanotifyMarkInode FanotifyMarkKind = iota + 1
	FanotifyMarkMount
	FanotifyMarkFilesystem
)

// FanotifyMark is one fanotify mark line. Ino, Dev and Handle are set for
// inode marks, MntID for mount marks, Dev for filesystem marks.
type FanotifyMark struct {
	Kind        FanotifyMarkKind
	Ino         uint64
	Dev         uint64 // unix.Mkdev encoding
	MntID       int
	MFlags      uint32
	Mask        uint32
	IgnoredMask uint32
	Handle      *FileHandle
}

// Pidfd is what a pidfd's fdinfo says about its process: the pid in the
// reader's namespace (0 if outside it, -1 once the process is reaped) and
// the pid in each nested namespace.
type Pidfd struct {
	Pid   int
	NSpid []int
}

// ReadFdInfo reads /proc/PID/fdinfo/FD.
func ReadFdInfo(pid, fd int) (FdInfo, error) {
	path := pidPath(pid, "fdinfo/"+strconv.Itoa(fd))
	b, err := readProcFile(path)
	if err != nil {
		return FdInfo{}, err
	}
	fi, err := parseFdInfo(b)
	return fi, fileError(path, err)
}

// ParseFdInfo parses the contents of an fdinfo file.
func ParseFdInfo(b []byte) (FdInfo, error) {
	fi, err := parseFdInfo(b)
	if err != nil {
		return FdInfo{}, fmt.Errorf("fdinfo: %w", err)
	}
	return fi, nil
}

func parseFdInfo(b []byte) (FdInfo, error) {
	fi := FdInfo{}
	seen := map[string]bool{}
	for n, raw := range bytes.Split(b, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		line := string(raw)
		var err error
		switch {
		case strings.HasPrefix(line, "tfd:"):
			err = fi.addEpoll(line)
		case strings.HasPrefix(line, "inotify "):
			err = fi.addInotify(line[len("inotify "):])
		case strings.HasPrefix(line, "fanotify "):
			err = fi.addFanotify(line[len("fanotify "):])
		default:
			key, val, ok := strings.Cut(line, ":")
			if !ok {
				// io_uring prints free-form lines such as "  op=1, task_works=0".
				fi.addExtra("", line)
				continue
			}
			val = strings.TrimSpace(val)
			known, singleton := fdinfoKey(key)
			if !known {
				fi.addExtra(strings.TrimSpace(key), val)
				continue
			}
			if singleton {
				if seen[key] {
					return FdInfo{}, fmt.Errorf("line %d: field %s repeated", n+1, key)
				}
				seen[key] = true
			}
			err = fi.set(key, val)
			if err != nil {
				err = fmt.Errorf("field %s: %w", key, err)
			}
		}
		if err != nil {
			return FdInfo{}, fmt.Errorf("line %d: %w", n+1, err)
		}
	}
	for _, k := range []string{"pos", "flags", "mnt_id"} {
		if !seen[k] {
			return FdInfo{}, fmt.Errorf("field %s: missing", k)
		}
	}
	return fi, nil
}

func (fi *FdInfo) set(key, val string) error {
	var err error
	switch key {
	case "pos":
		fi.Pos, err = parseInt(val, 10, 64)
	case "flags":
		var v uint64
		v, err = parseUint(val, 8, 32)
		fi.Flags = uint32(v)
	case "mnt_id":
		var v int64
		v, err = parseInt(val, 10, 32)
		fi.MntID = int(v)
	case "ino":
		fi.Ino, err = parseUint(val, 10, 64)
	case "eventfd-count":
		fi.ensureEventfd().Count, err = parseUint(val, 16, 64)
	case "eventfd-id":
		var v int64
		v, err = parseInt(val, 10, 32)
		fi.ensureEventfd().ID = int(v)
	case "eventfd-semaphore":
		var v uint64
		v, err = parseUint(val, 10, 8)
		fi.ensureEventfd().Semaphore = v != 0
	case "clockid":
		var v int64
		v, err = parseInt(val, 10, 32)
		fi.ensureTimerfd().ClockID = int(v)
	case "ticks":
		fi.ensureTimerfd().Ticks, err = parseUint(val, 10, 64)
	case "settime flags":
		var v uint64
		v, err = parseUint(val, 8, 32)
		fi.ensureTimerfd().SettimeFlags = int(v)
	case "it_value":
		fi.ensureTimerfd().Value, err = parseTimespecPair(val)
	case "it_interval":
		fi.ensureTimerfd().Interval, err = parseTimespecPair(val)
	case "sigmask":
		var v uint64
		v, err = parseUint(val, 16, 64)
		fi.Signalfd = &Signalfd{Sigmask: v}
	case "lock":
		fi.Locks = append(fi.Locks, val)
	case "Pid":
		var v int64
		v, err = parseInt(val, 10, 32)
		fi.ensurePidfd().Pid = int(v)
	case "NSpid":
		fi.ensurePidfd().NSpid, err = parseIntList(val)
	}
	return err
}

// fdinfoKey reports whether set understands key and whether the key may
// appear only once.
func fdinfoKey(key string) (known, singleton bool) {
	switch key {
	case "lock":
		return true, false
	case "pos", "flags", "mnt_id", "ino",
		"eventfd-count", "eventfd-id", "eventfd-semaphore",
		"clockid", "ticks", "settime flags", "it_value", "it_interval",
		"sigmask", "Pid", "NSpid":
		return true, true
	}
	return false, false
}

func (fi *FdInfo) addExtra(key, val string) {
	if fi.Extra == nil {
		fi.Extra = map[string][]string{}
	}
	fi.Extra[key] = append(fi.Extra[key], val)
}

func (fi *FdInfo) ensureEventfd() *Eventfd {
	if fi.Eventfd == nil {
		fi.Eventfd = &Eventfd{}
	}
	return fi.Eventfd
}

func (fi *FdInfo) ensureTimerfd() *Timerfd {
	if fi.Timerfd == nil {
		fi.Timerfd = &Timerfd{}
	}
	return fi.Timerfd
}

func (fi *FdInfo) ensurePidfd() *Pidfd {
	if fi.Pidfd == nil {
		fi.Pidfd = &Pidfd{}
	}
	return fi.Pidfd
}

// parseTimespecPair parses "(sec, nsec)".
func parseTimespecPair(s string) (unix.Timespec, error) {
	var ts unix.Timespec
	in, ok := strings.CutPrefix(s, "(")
	if ok {
		in, ok = strings.CutSuffix(in, ")")
	}
	sec, nsec, ok2 := strings.Cut(in, ",")
	if !ok || !ok2 {
		return ts, fmt.Errorf("%q: want (sec, nsec)", s)
	}
	v, err := parseUint(strings.TrimSpace(sec), 10, 63)
	if err != nil {
		return ts, fmt.Errorf("seconds: %w", err)
	}
	ts.Sec = int64(v)
	v, err = parseUint(strings.TrimSpace(nsec), 10, 63)
	if err != nil {
		return ts, fmt.Errorf("nanoseconds: %w", err)
	}
	ts.Nsec = int64(v)
	return ts, nil
}

// kvPairs splits the space-separated "key:value" or "key: value" items of
// the epoll, inotify and fanotify lines, checking each key appears once.
func kvPairs(s string) (map[string]string, error) {
	kv := map[string]string{}
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		k, v, ok := strings.Cut(f[i], ":")
		if !ok {
			return nil, fmt.Errorf("item %q has no ':'", f[i])
		}
		// epoll pads its values into a column of their own ("tfd:        6").
		if v == "" && i+1 < len(f) && !strings.Contains(f[i+1], ":") {
			i++
			v = f[i]
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("item %s repeated", k)
		}
		kv[k] = v
	}
	return kv, nil
}

// kvReader fetches typed values from kvPairs output, keeping the first error.
type kvReader struct {
	kv  map[string]string
	err error
}

func (r *kvReader) uint(key string, base, bits int) uint64 {
	if r.err != nil {
		return 0
	}
	s, ok := r.kv[key]
	if !ok {
		r.err = fmt.Errorf("item %s: missing", key)
		return 0
	}
	v, err := parseUint(s, base, bits)
	if err != nil {
		r.err = fmt.Errorf("item %s: %w", key, err)
	}
	return v
}

func (r *kvReader) int(key string, base, bits int) int64 {
	if r.err != nil {
		return 0
	}
	s, ok := r.kv[key]
	if !ok {
		r.err = fmt.Errorf("item %s: missing", key)
		return 0
	}
	v, err := parseInt(s, base, bits)
	if err != nil {
		r.err = fmt.Errorf("item %s: %w", key, err)
	}
	return v
}

func (r *kvReader) handle() *FileHandle {
	if r.err != nil {
		return nil
	}
	if _, ok := r.kv["fhandle-bytes"]; !ok {
		return nil
	}
	n := r.uint("fhandle-bytes", 16, 32)
	// The kernel prints the int type with %x, so a negative type would show
	// as its 32-bit two's complement.
	typ := r.uint("fhandle-type", 16, 32)
	if r.err != nil {
		return nil
	}
	h, err := hex.DecodeString(r.kv["f_handle"])
	if err != nil {
		r.err = fmt.Errorf("item f_handle: %w", err)
		return nil
	}
	if uint64(len(h)) != n {
		r.err = fmt.Errorf("item f_handle: %d bytes, fhandle-bytes says %d", len(h), n)
		return nil
	}
	return &FileHandle{Type: int32(typ), Handle: h}
}

// addEpoll parses "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x".
func (fi *FdInfo) addEpoll(line string) error {
	kv, err := kvPairs(line)
	if err != nil {
		return fmt.Errorf("tfd: %w", err)
	}
	r := kvReader{kv: kv}
	w := EpollWatch{
		TFD:    int(r.int("tfd", 10, 32)),
		Events: uint32(r.uint("events", 16, 32)),
		Data:   r.uint("data", 16, 64),
		Pos:    r.int("pos", 10, 64),
		Ino:    r.uint("ino", 16, 64),
		Dev:    kernelDev(r.uint("sdev", 16, 32)),
	}
	if r.err != nil {
		return fmt.Errorf("tfd: %w", r.err)
	}
	fi.Epoll = append(fi.Epoll, w)
	return nil
}

// addInotify parses "wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x" and an
// optional file handle. Note wd is hexadecimal.
func (fi *FdInfo) addInotify(line string) error {
	kv, err := kvPairs(line)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	r := kvReader{kv: kv}
	w := InotifyWatch{
		WD:          int(r.int("wd", 16, 32)),
		Ino:         r.uint("ino", 16, 64),
		Dev:         kernelDev(r.uint("sdev", 16, 32)),
		Mask:        uint32(r.uint("mask", 16, 32)),
		IgnoredMask: uint32(r.uint("ignored_mask", 16, 32)),
	}
	w.Handle = r.handle()
	if r.err != nil {
		return fmt.Errorf("inotify: %w", r.err)
	}
	fi.Inotify = append(fi.Inotify, w)
	return nil
}

// addFanotify parses the group line ("flags:%x event-flags:%x") and the
// inode ("ino:"), mount ("mnt_id:") and filesystem ("sdev:" only) marks.
func (fi *FdInfo) addFanotify(line string) error {
	kv, err := kvPairs(line)
	if err != nil {
		return fmt.Errorf("fanotify: %w", err)
	}
	if fi.Fanotify == nil {
		fi.Fanotify = &Fanotify{}
	}
	r := kvReader{kv: kv}
	if _, ok := kv["event-flags"]; ok {
		fi.Fanotify.Flags = uint32(r.uint("flags", 16, 32))
		fi.Fanotify.EventFlags = uint32(r.uint("event-flags", 16, 32))
		if r.err != nil {
			return fmt.Errorf("fanotify: %w", r.err)
		}
		return nil
	}
	var m FanotifyMark
	_, hasIno := kv["ino"]
	_, hasMnt := kv["mnt_id"]
	_, hasDev := kv["sdev"]
	switch {
	case hasIno:
		m.Kind = FanotifyMarkInode
		m.Ino = r.uint("ino", 16, 64)
		m.Dev = kernelDev(r.uint("sdev", 16, 32))
		m.Handle = r.handle()
	case hasMnt:
		m.Kind = FanotifyMarkMount
		m.MntID = int(r.int("mnt_id", 16, 32))
	case hasDev:
		m.Kind = FanotifyMarkFilesystem
		m.Dev = kernelDev(r.uint("sdev", 16, 32))
	default:
		// Newer mark types (e.g. mount namespaces) are kept rather than lost.
		fi.addExtra("fanotify", line)
		return nil
	}
	m.MFlags = uint32(r.uint("mflags", 16, 32))
	m.Mask = uint32(r.uint("mask", 16, 32))
	m.IgnoredMask = uint32(r.uint("ignored_mask", 16, 32))
	if r.err != nil {
		return fmt.Errorf("fanotify: %w", r.err)
	}
	fi.Fanotify.Marks = append(fi.Fanotify.Marks, m)
	return nil
}

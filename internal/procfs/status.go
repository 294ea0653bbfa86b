package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Status is /proc/PID/status (or a task's status). Fields the kernel did not
// print (for example Umask on kernel threads, the Vm* lines of a zombie) stay
// zero; Fields has every line as printed.
type Status struct {
	Name            string // comm, with the kernel's \n and \\ escapes undone
	Umask           uint32
	State           byte
	Tgid            int
	Ngid            int
	Pid             int
	PPid            int
	TracerPid       int
	Uid             [4]uint32 // real, effective, saved set, filesystem
	Gid             [4]uint32
	FDSize          int
	Groups          []uint32
	NStgid          []int // outermost namespace first
	NSpid           []int
	NSpgid          []int
	NSsid           []int
	Threads         int
	SigQ            SigQ
	SigPnd          uint64 // bit n-1 is signal n
	ShdPnd          uint64
	SigBlk          uint64
	SigIgn          uint64
	SigCgt          uint64
	CapInh          uint64
	CapPrm          uint64
	CapEff          uint64
	CapBnd          uint64
	CapAmb          uint64
	NoNewPrivs      bool
	Seccomp         int // SECCOMP_MODE_*
	SeccompFilters  int
	CpusAllowedList string
	MemsAllowedList string
	Fields          map[string]string // every "Key:" line, value with the leading tab removed
}

// SigQ is the "queued/limit" pair of the SigQ line.
type SigQ struct {
	Queued, Limit uint64
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (Status, error) {
	return readStatus(pidPath(pid, "status"))
}

// ReadTaskStatus reads /proc/PID/task/TID/status, which differs from the
// process's in per-thread fields such as SigBlk, SigPnd and State.
func ReadTaskStatus(pid, tid int) (Status, error) {
	return readStatus(pidPath(pid, "task/"+strconv.Itoa(tid)+"/status"))
}

func readStatus(path string) (Status, error) {
	b, err := readProcFile(path)
	if err != nil {
		return Status{}, err
	}
	st, err := parseStatus(b)
	return st, fileError(path, err)
}

// ParseStatus parses the contents of a status file.
func ParseStatus(b []byte) (Status, error) {
	st, err := parseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

func parseStatus(b []byte) (Status, error) {
	st := Status{Fields: map[string]string{}}
	for n, raw := range bytes.Split(b, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		key, val, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Status{}, fmt.Errorf("line %d: %q has no ':'", n+1, raw)
		}
		// Only the one tab after the colon is syntax: Name keeps any other
		// leading or trailing white space that is part of comm.
		val = strings.TrimPrefix(val, "\t")
		if _, dup := st.Fields[key]; dup {
			return Status{}, fmt.Errorf("line %d: field %s repeated", n+1, key)
		}
		st.Fields[key] = val
		if err := st.set(key, val); err != nil {
			return Status{}, fmt.Errorf("line %d: field %s: %w", n+1, key, err)
		}
	}
	for _, k := range []string{"Name", "State", "Tgid", "Pid"} {
		if _, ok := st.Fields[k]; !ok {
			return Status{}, fmt.Errorf("field %s: missing", k)
		}
	}
	return st, nil
}

func (st *Status) set(key, val string) error {
	var err error
	switch key {
	case "Name":
		st.Name, err = unescapeComm(val)
	case "Umask":
		st.Umask, err = statusUint32(val, 8)
	case "State":
		if val == "" {
			return fmt.Errorf("empty")
		}
		st.State = val[0]
	case "Tgid":
		st.Tgid, err = statusInt(val)
	case "Ngid":
		st.Ngid, err = statusInt(val)
	case "Pid":
		st.Pid, err = statusInt(val)
	case "PPid":
		st.PPid, err = statusInt(val)
	case "TracerPid":
		st.TracerPid, err = statusInt(val)
	case "Uid":
		st.Uid, err = statusIDs(val)
	case "Gid":
		st.Gid, err = statusIDs(val)
	case "FDSize":
		st.FDSize, err = statusInt(val)
	case "Groups":
		for _, g := range strings.Fields(val) {
			v, e := parseUint(g, 10, 32)
			if e != nil {
				return e
			}
			st.Groups = append(st.Groups, uint32(v))
		}
	case "NStgid":
		st.NStgid, err = parseIntList(val)
	case "NSpid":
		st.NSpid, err = parseIntList(val)
	case "NSpgid":
		st.NSpgid, err = parseIntList(val)
	case "NSsid":
		st.NSsid, err = parseIntList(val)
	case "Threads":
		st.Threads, err = statusInt(val)
	case "SigQ":
		q, l, ok := strings.Cut(val, "/")
		if !ok {
			return fmt.Errorf("%q: want queued/limit", val)
		}
		if st.SigQ.Queued, err = parseUint(q, 10, 64); err != nil {
			return err
		}
		st.SigQ.Limit, err = parseUint(l, 10, 64)
	case "SigPnd":
		st.SigPnd, err = parseUint(val, 16, 64)
	case "ShdPnd":
		st.ShdPnd, err = parseUint(val, 16, 64)
	case "SigBlk":
		st.SigBlk, err = parseUint(val, 16, 64)
	case "SigIgn":
		st.SigIgn, err = parseUint(val, 16, 64)
	case "SigCgt":
		st.SigCgt, err = parseUint(val, 16, 64)
	case "CapInh":
		st.CapInh, err = parseUint(val, 16, 64)
	case "CapPrm":
		st.CapPrm, err = parseUint(val, 16, 64)
	case "CapEff":
		st.CapEff, err = parseUint(val, 16, 64)
	case "CapBnd":
		st.CapBnd, err = parseUint(val, 16, 64)
	case "CapAmb":
		st.CapAmb, err = parseUint(val, 16, 64)
	case "NoNewPrivs":
		var v int
		v, err = statusInt(val)
		st.NoNewPrivs = v != 0
	case "Seccomp":
		st.Seccomp, err = statusInt(val)
	case "Seccomp_filters":
		st.SeccompFilters, err = statusInt(val)
	case "Cpus_allowed_list":
		st.CpusAllowedList = val
	case "Mems_allowed_list":
		st.MemsAllowedList = val
	}
	return err
}

func statusInt(s string) (int, error) {
	v, err := parseInt(strings.TrimSpace(s), 10, 32)
	return int(v), err
}

func statusUint32(s string, base int) (uint32, error) {
	v, err := parseUint(strings.TrimSpace(s), base, 32)
	return uint32(v), err
}

func statusIDs(s string) ([4]uint32, error) {
	var ids [4]uint32
	f := strings.Fields(s)
	if len(f) != 4 {
		return ids, fmt.Errorf("%q: want 4 ids", s)
	}
	for i, v := range f {
		n, err := parseUint(v, 10, 32)
		if err != nil {
			return ids, err
		}
		ids[i] = uint32(n)
	}
	return ids, nil
}

// unescapeComm undoes the escaping status applies to Name: the kernel turns
// a newline into `\n` and a backslash into `\\` and leaves all else raw.
func unescapeComm(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q: dangling backslash", s)
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf("%q: unknown escape \\%c", s, s[i])
		}
	}
	return b.String(), nil
}

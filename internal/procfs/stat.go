package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// Stat is /proc/PID/stat (or /proc/PID/task/TID/stat). Field numbers in
// comments and errors follow proc(5), counting pid as field 1.
type Stat struct {
	Pid                 int    // 1
	Comm                string // 2, without the parentheses; raw bytes, not escaped
	State               byte   // 3
	PPid                int    // 4
	Pgrp                int    // 5
	Session             int    // 6
	TtyNr               int    // 7
	Tpgid               int    // 8
	Flags               uint32 // 9, PF_* flags
	MinFlt              uint64 // 10
	CMinFlt             uint64 // 11
	MajFlt              uint64 // 12
	CMajFlt             uint64 // 13
	UTime               uint64 // 14, clock ticks
	STime               uint64 // 15
	CUTime              int64  // 16
	CSTime              int64  // 17
	Priority            int64  // 18
	Nice                int64  // 19
	NumThreads          int64  // 20
	ItRealValue         int64  // 21
	StartTime           uint64 // 22, clock ticks since boot
	VSize               uint64 // 23, bytes
	Rss                 int64  // 24, pages
	RssLim              uint64 // 25
	StartCode           uint64 // 26
	EndCode             uint64 // 27
	StartStack          uint64 // 28
	KStkESP             uint64 // 29
	KStkEIP             uint64 // 30
	Signal              uint64 // 31, obsolete decimal masks; use Status
	Blocked             uint64 // 32
	SigIgnore           uint64 // 33
	SigCatch            uint64 // 34
	WChan               uint64 // 35
	NSwap               uint64 // 36
	CNSwap              uint64 // 37
	ExitSignal          int    // 38
	Processor           int    // 39
	RTPriority          uint32 // 40
	Policy              uint32 // 41
	DelayAcctBlkioTicks uint64 // 42
	GuestTime           uint64 // 43
	CGuestTime          int64  // 44
	StartData           uint64 // 45
	EndData             uint64 // 46
	StartBrk            uint64 // 47
	ArgStart            uint64 // 48
	ArgEnd              uint64 // 49
	EnvStart            uint64 // 50
	EnvEnd              uint64 // 51
	ExitCode            int    // 52
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	return readStat(pidPath(pid, "stat"))
}

// ReadTaskStat reads /proc/PID/task/TID/stat.
func ReadTaskStat(pid, tid int) (Stat, error) {
	return readStat(pidPath(pid, "task/"+strconv.Itoa(tid)+"/stat"))
}

func readStat(path string) (Stat, error) {
	b, err := readProcFile(path)
	if err != nil {
		return Stat{}, err
	}
	st, err := parseStat(b)
	return st, fileError(path, err)
}

// ParseStat parses the contents of a stat file.
func ParseStat(b []byte) (Stat, error) {
	st, err := parseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("stat: %w", err)
	}
	return st, nil
}

// statFields reads the space-separated fields after comm, remembering the
// first error so the assignments in parseStat can stay one per line.
type statFields struct {
	f   [][]byte // f[0] is field 3 (state)
	err error
}

func (p *statFields) get(n int, name string) string {
	if p.err != nil {
		return ""
	}
	if n-3 >= len(p.f) {
		p.err = fmt.Errorf("field %d (%s): missing", n, name)
		return ""
	}
	return string(p.f[n-3])
}

func (p *statFields) uint(n int, name string, bits int) uint64 {
	s := p.get(n, name)
	if p.err != nil {
		return 0
	}
	v, err := parseUint(s, 10, bits)
	if err != nil {
		p.err = fmt.Errorf("field %d (%s): %w", n, name, err)
	}
	return v
}

func (p *statFields) int(n int, name string, bits int) int64 {
	s := p.get(n, name)
	if p.err != nil {
		return 0
	}
	v, err := parseInt(s, 10, bits)
	if err != nil {
		p.err = fmt.Errorf("field %d (%s): %w", n, name, err)
	}
	return v
}

func parseStat(b []byte) (Stat, error) {
	var st Stat
	// comm can hold spaces, parentheses and even newlines, but nothing after
	// it can hold ')', so the last ')' ends it.
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return st, fmt.Errorf("field 2 (comm): no parenthesised command name")
	}
	pid, err := parseInt(string(bytes.TrimSpace(b[:open])), 10, 32)
	if err != nil {
		return st, fmt.Errorf("field 1 (pid): %w", err)
	}
	st.Pid = int(pid)
	st.Comm = string(b[open+1 : close])

	p := statFields{f: bytes.Fields(b[close+1:])}
	state := p.get(3, "state")
	if p.err == nil && len(state) != 1 {
		return st, fmt.Errorf("field 3 (state): %q is not one character", state)
	}
	if p.err == nil {
		st.State = state[0]
	}
	st.PPid = int(p.int(4, "ppid", 32))
	st.Pgrp = int(p.int(5, "pgrp", 32))
	st.Session = int(p.int(6, "session", 32))
	st.TtyNr = int(p.int(7, "tty_nr", 32))
	st.Tpgid = int(p.int(8, "tpgid", 32))
	st.Flags = uint32(p.uint(9, "flags", 32))
	st.MinFlt = p.uint(10, "minflt", 64)
	st.CMinFlt = p.uint(11, "cminflt", 64)
	st.MajFlt = p.uint(12, "majflt", 64)
	st.CMajFlt = p.uint(13, "cmajflt", 64)
	st.UTime = p.uint(14, "utime", 64)
	st.STime = p.uint(15, "stime", 64)
	st.CUTime = p.int(16, "cutime", 64)
	st.CSTime = p.int(17, "cstime", 64)
	st.Priority = p.int(18, "priority", 64)
	st.Nice = p.int(19, "nice", 64)
	st.NumThreads = p.int(20, "num_threads", 64)
	st.ItRealValue = p.int(21, "itrealvalue", 64)
	st.StartTime = p.uint(22, "starttime", 64)
	st.VSize = p.uint(23, "vsize", 64)
	st.Rss = p.int(24, "rss", 64)
	st.RssLim = p.uint(25, "rsslim", 64)
	st.StartCode = p.uint(26, "startcode", 64)
	st.EndCode = p.uint(27, "endcode", 64)
	st.StartStack = p.uint(28, "startstack", 64)
	st.KStkESP = p.uint(29, "kstkesp", 64)
	st.KStkEIP = p.uint(30, "kstkeip", 64)
	st.Signal = p.uint(31, "signal", 64)
	st.Blocked = p.uint(32, "blocked", 64)
	st.SigIgnore = p.uint(33, "sigignore", 64)
	st.SigCatch = p.uint(34, "sigcatch", 64)
	st.WChan = p.uint(35, "wchan", 64)
	st.NSwap = p.uint(36, "nswap", 64)
	st.CNSwap = p.uint(37, "cnswap", 64)
	st.ExitSignal = int(p.int(38, "exit_signal", 32))
	st.Processor = int(p.int(39, "processor", 32))
	st.RTPriority = uint32(p.uint(40, "rt_priority", 32))
	st.Policy = uint32(p.uint(41, "policy", 32))
	st.DelayAcctBlkioTicks = p.uint(42, "delayacct_blkio_ticks", 64)
	st.GuestTime = p.uint(43, "guest_time", 64)
	st.CGuestTime = p.int(44, "cguest_time", 64)
	st.StartData = p.uint(45, "start_data", 64)
	st.EndData = p.uint(46, "end_data", 64)
	st.StartBrk = p.uint(47, "start_brk", 64)
	st.ArgStart = p.uint(48, "arg_start", 64)
	st.ArgEnd = p.uint(49, "arg_end", 64)
	st.EnvStart = p.uint(50, "env_start", 64)
	st.EnvEnd = p.uint(51, "env_end", 64)
	st.ExitCode = int(p.int(52, "exit_code", 32))
	// Later kernels may append fields; ignoring them keeps this reader working.
	if p.err != nil {
		return Stat{}, p.err
	}
	return st, nil
}

package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// SysVShm is one System V shared memory segment of /proc/sysvipc/shm.
type SysVShm struct {
	Key           int32
	ID            int
	Perms         uint32 // mode bits, SHM_DEST (01000) once removed
	Size          uint64
	Nattch        int
	UID, GID      uint32
	CreatorPID    int
	LastAttachPID int
}

// ReadSysVShm reads /proc/sysvipc/shm: the segments of this IPC namespace.
func ReadSysVShm() ([]SysVShm, error) {
	const path = "/proc/sysvipc/shm"
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSysVShm(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return s, nil
}

// ParseSysVShm parses /proc/sysvipc/shm: a header line naming the columns,
// then one line per segment.
func ParseSysVShm(b []byte) ([]SysVShm, error) {
	lines := bytes.Split(b, []byte{'\n'})
	if len(lines) == 0 {
		return nil, fmt.Errorf("sysvipc/shm: empty")
	}
	cols := strings.Fields(string(lines[0]))
	index := map[string]int{}
	for i, c := range cols {
		index[c] = i
	}
	for _, c := range []string{"key", "shmid", "perms", "size", "nattch", "uid", "gid", "cpid", "lpid"} {
		if _, ok := index[c]; !ok {
			return nil, fmt.Errorf("sysvipc/shm: no %q column in %q", c, lines[0])
		}
	}
	var out []SysVShm
	for n, line := range lines[1:] {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != len(cols) {
			return nil, fmt.Errorf("sysvipc/shm line %d: %d fields, want %d", n+2, len(f), len(cols))
		}
		get := func(col string, base, bits int) (uint64, error) {
			return parseUint(f[index[col]], base, bits)
		}
		var s SysVShm
		key, err := parseInt(f[index["key"]], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("sysvipc/shm line %d: key: %w", n+2, err)
		}
		s.Key = int32(key)
		for _, x := range []struct {
			col  string
			base int
			set  func(uint64)
		}{
			{"shmid", 10, func(v uint64) { s.ID = int(v) }},
			{"perms", 8, func(v uint64) { s.Perms = uint32(v) }},
			{"size", 10, func(v uint64) { s.Size = v }},
			{"nattch", 10, func(v uint64) { s.Nattch = int(v) }},
			{"uid", 10, func(v uint64) { s.UID = uint32(v) }},
			{"gid", 10, func(v uint64) { s.GID = uint32(v) }},
			{"cpid", 10, func(v uint64) { s.CreatorPID = int(v) }},
			{"lpid", 10, func(v uint64) { s.LastAttachPID = int(v) }},
		} {
			v, err := get(x.col, x.base, 64)
			if err != nil {
				return nil, fmt.Errorf("sysvipc/shm line %d: %s: %w", n+2, x.col, err)
			}
			x.set(v)
		}
		out = append(out, s)
	}
	return out, nil
}

// SysVSem is one System V semaphore set of /proc/sysvipc/sem.
type SysVSem struct {
	Key      int32
	ID       int
	Perms    uint32 // mode bits
	Nsems    int
	UID, GID uint32
}

// SysVMsg is one System V message queue of /proc/sysvipc/msg.
type SysVMsg struct {
	Key      int32
	ID       int
	Perms    uint32 // mode bits
	Cbytes   uint64 // bytes queued
	Qnum     int    // messages queued
	UID, GID uint32
}

// ReadSysVSem reads /proc/sysvipc/sem: the semaphore sets of the calling
// thread's IPC namespace.
func ReadSysVSem() ([]SysVSem, error) {
	const path = "/proc/sysvipc/sem"
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSysVSem(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return s, nil
}

// ReadSysVMsg reads /proc/sysvipc/msg: the message queues of the calling
// thread's IPC namespace.
func ReadSysVMsg() ([]SysVMsg, error) {
	const path = "/proc/sysvipc/msg"
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSysVMsg(b)
	if err != nil {
		return nil, fileError(path, err)
	}
	return s, nil
}

// sysvColumn is one column a /proc/sysvipc table is read for.
type sysvColumn struct {
	name string
	base int
	set  func(uint64)
}

// parseSysVTable parses a /proc/sysvipc table: a header line naming the
// columns, then one line per object, each calling row with setters for
// the columns it wants.
func parseSysVTable(b []byte, table string, row func(key int32) []sysvColumn) error {
	lines := bytes.Split(b, []byte{'\n'})
	cols := strings.Fields(string(lines[0]))
	index := map[string]int{}
	for i, c := range cols {
		index[c] = i
	}
	if _, ok := index["key"]; !ok {
		return fmt.Errorf("sysvipc/%s: no key column in %q", table, lines[0])
	}
	for n, line := range lines[1:] {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != len(cols) {
			return fmt.Errorf("sysvipc/%s line %d: %d fields, want %d", table, n+2, len(f), len(cols))
		}
		key, err := parseInt(f[index["key"]], 10, 32)
		if err != nil {
			return fmt.Errorf("sysvipc/%s line %d: key: %w", table, n+2, err)
		}
		for _, c := range row(int32(key)) {
			i, ok := index[c.name]
			if !ok {
				return fmt.Errorf("sysvipc/%s: no %q column in %q", table, c.name, lines[0])
			}
			v, err := parseUint(f[i], c.base, 64)
			if err != nil {
				return fmt.Errorf("sysvipc/%s line %d: %s: %w", table, n+2, c.name, err)
			}
			c.set(v)
		}
	}
	return nil
}

// ParseSysVSem parses /proc/sysvipc/sem.
func ParseSysVSem(b []byte) ([]SysVSem, error) {
	var out []SysVSem
	err := parseSysVTable(b, "sem", func(key int32) []sysvColumn {
		out = append(out, SysVSem{Key: key})
		s := &out[len(out)-1]
		return []sysvColumn{
			{"semid", 10, func(v uint64) { s.ID = int(v) }},
			{"perms", 8, func(v uint64) { s.Perms = uint32(v) }},
			{"nsems", 10, func(v uint64) { s.Nsems = int(v) }},
			{"uid", 10, func(v uint64) { s.UID = uint32(v) }},
			{"gid", 10, func(v uint64) { s.GID = uint32(v) }},
		}
	})
	return out, err
}

// ParseSysVMsg parses /proc/sysvipc/msg.
func ParseSysVMsg(b []byte) ([]SysVMsg, error) {
	var out []SysVMsg
	err := parseSysVTable(b, "msg", func(key int32) []sysvColumn {
		out = append(out, SysVMsg{Key: key})
		m := &out[len(out)-1]
		return []sysvColumn{
			{"msqid", 10, func(v uint64) { m.ID = int(v) }},
			{"perms", 8, func(v uint64) { m.Perms = uint32(v) }},
			{"cbytes", 10, func(v uint64) { m.Cbytes = v }},
			{"qnum", 10, func(v uint64) { m.Qnum = int(v) }},
			{"uid", 10, func(v uint64) { m.UID = uint32(v) }},
			{"gid", 10, func(v uint64) { m.GID = uint32(v) }},
		}
	})
	return out, err
}

package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Tids lists the threads of pid from /proc/PID/task, sorted.
func Tids(pid int) ([]int, error) {
	return readIntDir(pidPath(pid, "task"))
}

// Children lists the children of thread tid of pid, from
// /proc/PID/task/TID/children: only children that thread forked, so a full
// list needs every thread's file.
func Children(pid, tid int) ([]int, error) {
	path := pidPath(pid, "task/"+strconv.Itoa(tid)+"/children")
	b, err := readProcFile(path)
	if err != nil {
		return nil, err
	}
	ids, err := parseIntList(string(b))
	if err != nil {
		return nil, fileError(path, err)
	}
	return ids, nil
}

// ParseChildren parses a children file: space-separated pids.
func ParseChildren(b []byte) ([]int, error) {
	ids, err := parseIntList(string(b))
	if err != nil {
		return nil, fmt.Errorf("children: %w", err)
	}
	return ids, nil
}

// Personality reads /proc/PID/personality (the personality(2) value).
func Personality(pid int) (uint32, error) {
	path := pidPath(pid, "personality")
	b, err := readProcFile(path)
	if err != nil {
		return 0, err
	}
	v, err := parseUint(strings.TrimSpace(string(b)), 16, 32)
	if err != nil {
		return 0, fileError(path, err)
	}
	return uint32(v), nil
}

// ParsePersonality parses the hexadecimal personality file.
func ParsePersonality(b []byte) (uint32, error) {
	v, err := parseUint(strings.TrimSpace(string(b)), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("personality: %w", err)
	}
	return uint32(v), nil
}

// Exe returns the /proc/PID/exe link target (with " (deleted)" if the
// executable was unlinked).
func Exe(pid int) (string, error) { return readLink(pidPath(pid, "exe")) }

// Cwd returns the /proc/PID/cwd link target.
func Cwd(pid int) (string, error) { return readLink(pidPath(pid, "cwd")) }

// Root returns the /proc/PID/root link target.
func Root(pid int) (string, error) { return readLink(pidPath(pid, "root")) }

func readLink(path string) (string, error) {
	t, err := os.Readlink(path)
	if err != nil {
		return "", err
	}
	return t, nil
}

// Comm reads /proc/PID/comm without its trailing newline. Unlike status's
// Name it is not escaped, so it is the exact name (at most 15 bytes).
func Comm(pid int) (string, error) {
	b, err := readProcFile(pidPath(pid, "comm"))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Blocked is what /proc/PID/syscall says of a thread asleep in a system
// call: the call's number and its six arguments.
type Blocked struct {
	Nr   int64
	Args [6]uint64
}

// ReadSyscall reads /proc/PID/syscall of pid's main thread. ok is false
// when the thread is not in a system call ("running", or -1: blocked
// outside one, as in a page fault).
func ReadSyscall(pid int) (b Blocked, ok bool, err error) {
	path := pidPath(pid, "syscall")
	raw, err := readProcFile(path)
	if err != nil {
		return Blocked{}, false, err
	}
	b, ok, err = ParseSyscall(raw)
	if err != nil {
		return Blocked{}, false, fileError(path, err)
	}
	return b, ok, nil
}

// ParseSyscall parses a /proc/PID/syscall file: "running", "-1 SP PC", or
// the number, six arguments, SP and PC ("7 0x7ffc 0x1 0xffffffff 0x0 0x0
// 0x0 0x7ffc 0x7f12"), the arguments and addresses in hex.
func ParseSyscall(raw []byte) (Blocked, bool, error) {
	fields := strings.Fields(string(raw))
	switch {
	case len(fields) == 1 && fields[0] == "running":
		return Blocked{}, false, nil
	case len(fields) == 3 && fields[0] == "-1":
		return Blocked{}, false, nil
	case len(fields) != 9:
		return Blocked{}, false, fmt.Errorf("syscall: %d fields, want 1, 3 or 9", len(fields))
	}
	var b Blocked
	nr, err := parseUint(fields[0], 10, 32)
	if err != nil {
		return Blocked{}, false, fmt.Errorf("syscall: number: %w", err)
	}
	b.Nr = int64(nr)
	for i := range b.Args {
		hex, ok := strings.CutPrefix(fields[1+i], "0x")
		if !ok {
			return Blocked{}, false, fmt.Errorf("syscall: argument %d: %q is not hex", i+1, fields[1+i])
		}
		if b.Args[i], err = parseUint(hex, 16, 64); err != nil {
			return Blocked{}, false, fmt.Errorf("syscall: argument %d: %w", i+1, err)
		}
	}
	return b, true, nil
}

// ChildWithNsPid finds, among the children of process parent (pids as
// this process sees them), the one whose pid in its own pid namespace is
// inner: what a clone run inside parent returned.
func ChildWithNsPid(parent, inner int) (int, error) {
	tids, err := Tids(parent)
	if err != nil {
		return 0, err
	}
	for _, tid := range tids {
		kids, err := Children(parent, tid)
		if err != nil {
			continue
		}
		for _, k := range kids {
			if st, err := ReadStatus(k); err == nil && len(st.NSpid) > 0 && st.NSpid[len(st.NSpid)-1] == inner {
				return k, nil
			}
		}
	}
	return 0, fmt.Errorf("no child of %d has pid %d in its namespace", parent, inner)
}

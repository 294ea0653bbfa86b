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
		return nil, fmt.Errorf("procfs: children: %w", err)
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
		return 0, fmt.Errorf("procfs: personality: %w", err)
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
		return "", fmt.Errorf("procfs: %w", err)
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

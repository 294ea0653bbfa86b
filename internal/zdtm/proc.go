package zdtm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/PID/stat the driver needs.
type procStat struct {
	pid, ppid, pgid, sid int
	state                byte
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// comm is in parentheses and may hold anything: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+2:])
	if len(f) < 4 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	st := procStat{pid: pid, state: f[0][0]}
	st.ppid, _ = strconv.Atoi(string(f[1]))
	st.pgid, _ = strconv.Atoi(string(f[2]))
	st.sid, _ = strconv.Atoi(string(f[3]))
	return st, nil
}

func allStats() []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// treeOf returns the processes of a test: roots, those in a session or
// process group of groups (a zdtm test calls setsid once it forked away
// from its launcher, which the driver starts in a process group of its
// own) and every descendant of those, sorted.
func treeOf(roots, groups []int) []int {
	stats := allStats()
	in := map[int]bool{}
	g := map[int]bool{}
	ownSid, _ := unix.Getsid(0)
	ownPgid := unix.Getpgrp()
	for _, id := range groups {
		// never the driver's own session or group
		if id > 1 && id != ownSid && id != ownPgid {
			g[id] = true
		}
	}
	for _, p := range roots {
		if p > 1 {
			in[p] = true
		}
	}
	for _, st := range stats {
		if g[st.sid] || g[st.pgid] {
			in[st.pid] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, st := range stats {
			if !in[st.pid] && in[st.ppid] {
				in[st.pid] = true
				changed = true
			}
		}
	}
	self := os.Getpid()
	var out []int
	for pid := range in {
		if pid != self && pid > 1 {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				out = append(out, pid)
			}
		}
	}
	sort.Ints(out)
	return out
}

// alive reports whether pid exists; a zombie counts as alive unless
// zombieDead is set.
func alive(pid int, zombieDead bool) bool {
	st, err := readStat(pid)
	if err != nil {
		return false
	}
	return !(zombieDead && (st.state == 'Z' || st.state == 'X'))
}

// waitGone waits until none of pids is alive.
func waitGone(ctx context.Context, pids []int, zombieDead bool) error {
	for {
		var left []int
		for _, p := range pids {
			if alive(p, zombieDead) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pids %v still there", left)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killTree sends SIGKILL to every process of the test (see treeOf) until
// none is left but zombies, for at most timeout. It does not wait for pid
// 1 to reap them (about a second here): the next test has other pids.
func killTree(roots, groups []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := treeOf(roots, groups)
		var live []int
		for _, p := range pids {
			if alive(p, true) {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			err := waitGone(ctx, pids, true)
			cancel()
			return err
		}
		for _, p := range live {
			// SIGCONT too: a stopped or traced process must run to die.
			_ = unix.Kill(p, unix.SIGKILL)
			_ = unix.Kill(p, unix.SIGCONT)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("could not kill %v", live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package ckpt

// SetsidAfterFork lists, by pid, the processes of t that made their
// session (setsid) after forking a child, or an ancestor of one, that
// stayed in the session they were in: a process in another session than
// its parent's, not a session leader, and not an orphan the init of its
// pid namespace was given, was born before its parent left the session,
// and so was its parent, up to a process of that session (none: the
// process is not listed for).
func (t *Tree) SetsidAfterFork() map[int]bool {
	byPid := make(map[int]*TreeProcess, len(t.Processes))
	for i := range t.Processes {
		byPid[t.Processes[i].Pid] = &t.Processes[i]
	}
	out := map[int]bool{}
	for _, tp := range t.Processes {
		parent := byPid[tp.Ppid]
		if parent == nil || tp.Sid == tp.Pid || parent.Sid == tp.Sid || parent.NsPid == 1 {
			continue
		}
		var chain []int
		p := parent
		for ; p != nil && p.Sid != tp.Sid; p = byPid[p.Ppid] {
			if p.Sid == p.Pid {
				chain = append(chain, p.Pid)
			}
		}
		if p == nil {
			continue // no ancestor in its session: not born in it here
		}
		for _, pid := range chain {
			out[pid] = true
		}
	}
	return out
}

package checkpoint

import "github.com/crsub/crsub/ckpt"

// sessionOrder orders procs (tree records given) so that a process in a
// session none of its ancestors is in (an orphan the init of its pid
// namespace was given) comes after the leader of its session, or, the
// leader being a zombie, after the zombie's parent: a restart forks it
// from there (restart/session.go); and that a leader's children born
// before its setsid come before those born after. Parents stay before their children,
// and the order is otherwise kept.
func sessionOrder(procs []*proc, zombies []ckpt.TreeProcess) []*proc {
	index := map[int]int{}
	for i, p := range procs {
		index[p.pid] = i
	}
	zombieParent := map[int]int{}
	for _, z := range zombies {
		zombieParent[z.Pid] = z.Ppid
	}
	// A leader that made its session after forking some children forks
	// those before the others, which are in its session.
	var tree ckpt.Tree
	for _, p := range procs {
		tp := p.state.tree
		tp.Ppid = p.ppid
		tree.Processes = append(tree.Processes, tp)
	}
	laterSetsid := tree.SetsidAfterFork()
	bornBefore := map[int][]int{} // by parent
	for i, p := range procs {
		if tp := p.state.tree; laterSetsid[p.ppid] && tp.Sid != p.ppid {
			bornBefore[p.ppid] = append(bornBefore[p.ppid], i)
		}
	}
	// after[i] are the indexes that must come before procs[i].
	after := make([][]int, len(procs))
	for i, p := range procs {
		if j, ok := index[p.ppid]; ok {
			after[i] = append(after[i], j)
		}
		if p.state.tree.Sid == p.ppid {
			after[i] = append(after[i], bornBefore[p.ppid]...)
		}
		tp := p.state.tree
		pi, ok := index[p.ppid]
		if !ok || tp.Sid == tp.Pid || procs[pi].state.tree.Sid == tp.Sid {
			continue
		}
		leader, ok := index[tp.Sid]
		if zp, zombie := zombieParent[tp.Sid]; zombie {
			leader, ok = index[zp]
		}
		if ok && leader != i {
			after[i] = append(after[i], leader)
		}
	}
	// Each round takes the first process whose predecessors are taken; a
	// cycle (not expected: a session leader is not its own orphan's
	// descendant) keeps the rest in their order.
	done := make([]bool, len(procs))
	out := make([]*proc, 0, len(procs))
	for len(out) < len(procs) {
		next := -1
		for i := range procs {
			if done[i] {
				continue
			}
			ready := true
			for _, j := range after[i] {
				ready = ready && done[j]
			}
			if ready {
				next = i
				break
			}
		}
		if next < 0 {
			for i := range procs {
				if !done[i] {
					out = append(out, procs[i])
				}
			}
			return out
		}
		done[next] = true
		out = append(out, procs[next])
	}
	return out
}

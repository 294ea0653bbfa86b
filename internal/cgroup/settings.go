package cgroup

import (
	"strings"
)

// A cgroup's settings are the files of its directory that configure it
// (limits, weights, the devices it allows…). The ones recorded are those
// CRIU records, and the unified hierarchy's counterparts of its v1
// limits; in the order written back (a memory limit before the memory and
// swap limit, a cpuset's CPUs and memory nodes before the rest).

// setting is a cgroup file whose value is recorded and written back.
type setting struct {
	name string
	// atCreation settings are written only into a cgroup the restart
	// makes, right after making it, before its children: the kernel
	// copies them into a child when the child is made (devices, cpuset),
	// or takes them only while the cgroup is empty.
	atCreation bool
	// lines settings take one write per line (the kernel parses one rule
	// per write); skipFailed ones go on past a line the kernel refuses
	// (an interface this machine does not have).
	lines, skipFailed bool
	// ownerOnly files are recorded for their owner and mode alone: their
	// contents are tasks, which join one by one.
	ownerOnly bool
}

// v1Global are in every cgroup of a v1 hierarchy.
var v1Global = []setting{
	{name: "cgroup.clone_children"},
	{name: "notify_on_release"},
	{name: "cgroup.procs", ownerOnly: true},
	{name: "tasks", ownerOnly: true},
}

// v2Global are in every cgroup of the unified hierarchy, and the
// controllers' files there when the parent enables them.
var v2Global = []setting{
	{name: "cgroup.type", atCreation: true},
	{name: "cgroup.subtree_control"},
	{name: "cgroup.max.descendants"},
	{name: "cgroup.max.depth"},
	{name: "cgroup.procs", ownerOnly: true},
	{name: "cgroup.threads", ownerOnly: true},
	{name: "cpu.weight"},
	{name: "cpu.max"},
	{name: "memory.min"},
	{name: "memory.low"},
	{name: "memory.high"},
	{name: "memory.max"},
	{name: "memory.swap.max"},
	{name: "pids.max"},
}

// v1Controllers are the settings of each v1 controller.
var v1Controllers = map[string][]setting{
	"cpu": {{name: "cpu.shares"}, {name: "cpu.cfs_period_us"}, {name: "cpu.cfs_quota_us"}, {name: "cpu.rt_period_us"}, {name: "cpu.rt_runtime_us"}},
	"memory": {{name: "memory.limit_in_bytes"}, {name: "memory.memsw.limit_in_bytes"}, {name: "memory.swappiness", atCreation: true},
		{name: "memory.soft_limit_in_bytes"}, {name: "memory.move_charge_at_immigrate"}, {name: "memory.oom_control", atCreation: true},
		{name: "memory.use_hierarchy", atCreation: true}, {name: "memory.kmem.limit_in_bytes", atCreation: true}, {name: "memory.kmem.tcp.limit_in_bytes"}},
	"cpuset": {{name: "cpuset.cpus", atCreation: true}, {name: "cpuset.mems", atCreation: true}, {name: "cpuset.memory_migrate"},
		{name: "cpuset.cpu_exclusive"}, {name: "cpuset.mem_exclusive"}, {name: "cpuset.mem_hardwall"}, {name: "cpuset.memory_spread_page"},
		{name: "cpuset.memory_spread_slab"}, {name: "cpuset.sched_load_balance"}, {name: "cpuset.sched_relax_domain_level"}},
	"blkio":    {{name: "blkio.weight"}},
	"net_cls":  {{name: "net_cls.classid"}},
	"net_prio": {{name: "net_prio.ifpriomap", lines: true, skipFailed: true}},
	"pids":     {{name: "pids.max"}},
	"devices":  {{name: "devices.list", atCreation: true}},
}

// settingsOf are the settings of a cgroup of the hierarchy named by
// controllers ("" for the unified one), in the order written back.
func settingsOf(controllers string) []setting {
	if controllers == "" {
		return v2Global
	}
	var out []setting
	for _, c := range strings.Split(controllers, ",") {
		out = append(out, v1Controllers[c]...)
	}
	return append(out, v1Global...)
}

// findSetting finds a setting of the hierarchy by file name.
func findSetting(controllers, name string) (setting, bool) {
	for _, s := range settingsOf(controllers) {
		if s.name == name {
			return s, true
		}
	}
	return setting{}, false
}

// normalize makes a value as read what is written back: one value where
// the file shows more (memory.oom_control), without the trailing newline.
func normalize(name, value string) string {
	value = strings.TrimSuffix(value, "\n")
	if name == "memory.oom_control" {
		for _, line := range strings.Split(value, "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill_disable "); ok {
				return v
			}
		}
	}
	return value
}

// unchanged says a value is what a new cgroup has anyway, so writing it
// is left out: the kernel refuses some of these writes where they change
// nothing (a new memory cgroup's swappiness under use_hierarchy).
func unchanged(name, value string) bool {
	switch name {
	case "memory.swappiness":
		return value == "60"
	case "memory.oom_control":
		return value == "0"
	case "cgroup.type":
		return value != "threaded"
	case "net_prio.ifpriomap":
		// Lines of priority 0 are what every interface has anyway.
		for _, line := range strings.Split(value, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] != "0" {
				return false
			}
		}
		return true
	}
	return false
}

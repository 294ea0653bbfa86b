// Package ns holds, for each kind of namespace (user, one level below
// crsub's; uts, ipc, net, pid, time, cgroup, mnt), what a checkpoint
// reads of a namespace, its image record, and what a restart does to make
// it again and fill it, side by side, as package files does for the kinds
// of open file.
//
// A namespace is an object of the image: recorded once (ckpt.Namespace,
// with what it holds that is small) before the first process, named by the
// processes in it (ckpt.Process.Namespaces), with the records of what it
// holds that is large (System V objects, a network namespace's links)
// depending on it. The drivers decide when a namespace is made and by which
// task (checkpoint/namespaces.go, restart/namespaces.go); a Kind says how:
// by a clone flag when the first task in it is created, or by unshare in
// that task (or its parent, for the kinds a process chooses for its
// children: pid and time), with what must be set before anyone enters it.
//
// What a namespace holds is read and written by crsub itself, from an OS
// thread that joined the namespace and dies afterwards (Do): nothing else
// of crsub runs there, and a restart that fails leaves nothing behind, the
// namespaces dying with the tasks they were made for.
package ns

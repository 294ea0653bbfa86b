// Package fault makes crsub's own system calls and image writes fail on
// purpose, for tests that check what a failure leaves behind. Its hooks sit
// where the engine meets the kernel: Injected in internal/remote (a system
// call run inside a task), Call in the thin wrappers of internal/sys,
// internal/ptrace and internal/atomicfile (a call crsub makes itself), Write
// in the image writer. The drivers name the phase they are in (Phase), so
// that a test can fail the Nth call of one phase.
//
// It is active only in builds with the faultinject tag. In other builds
// Enabled is false and every hook is an empty function the compiler
// inlines away: release builds behave as if the package did not exist.
//
// Unlike the rest of crsub it keeps package-level state, in the faultinject
// build only: a hook deep in the plumbing cannot be handed a plan without
// threading a test's concern through every layer.
package fault

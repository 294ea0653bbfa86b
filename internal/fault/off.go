//go:build !faultinject

package fault

// Enabled says whether this build has fault injection (the faultinject
// tag). Code that only prepares a hook's arguments tests it, so that the
// preparation compiles away too.
const Enabled = false

// Phase names what the driver does from now on; the hooks count in it.
func Phase(name string) {}

// Injected is called before system call nr is injected into a task; an
// error is the call's result instead.
func Injected(nr int) error { return nil }

// Call is called before crsub makes system call name itself; an error is
// the call's result instead.
func Call(name string) error { return nil }

// Write is called before n bytes of the image are written: it returns how
// many of them to write, and the error to return after them.
func Write(n int) (int, error) { return n, nil }

// Suspend stops counting and failing until the returned function is
// called: for the paths that put a process back as it was, which a test
// fails separately or not at all.
func Suspend() (resume func()) { return func() {} }

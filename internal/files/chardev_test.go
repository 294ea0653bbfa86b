package files

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestTerminalKinds(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rdev             uint64
		terminal, kernel bool
	}{
		{"/dev/console", unix.Mkdev(5, 1), true, true},
		{"/dev/tty0", unix.Mkdev(4, 0), true, true},
		{"/dev/tty5", unix.Mkdev(4, 5), true, true},
		{"/dev/ttyS0", unix.Mkdev(4, 64), true, true},
		{"/dev/tty", unix.Mkdev(5, 0), true, false},
		{"/dev/ptmx", unix.Mkdev(5, 2), true, false},
		{"/dev/pts/3", unix.Mkdev(136, 3), true, false},
		{"/dev/null", unix.Mkdev(1, 3), false, false},
		{"/dev/ttyUSB0", unix.Mkdev(188, 0), false, false},
	} {
		if got := isTerminal(tc.rdev); got != tc.terminal {
			t.Errorf("isTerminal(%s) = %v, want %v", tc.name, got, tc.terminal)
		}
		if got := KernelTerminal(tc.rdev); got != tc.kernel {
			t.Errorf("KernelTerminal(%s) = %v, want %v", tc.name, got, tc.kernel)
		}
	}
}

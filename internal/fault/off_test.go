//go:build !faultinject

package fault

import "testing"

// Without the tag nothing fails.
func TestHooksDoNothing(t *testing.T) {
	Phase("p")
	defer Suspend()()
	if err := Injected(9); err != nil {
		t.Error(err)
	}
	if err := Call("c"); err != nil {
		t.Error(err)
	}
	if n, err := Write(7); n != 7 || err != nil {
		t.Errorf("Write(7) = %d, %v", n, err)
	}
}

package procfs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTimensOffsets(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TimensOffsets
	}{
		{"monotonic           0         0\nboottime            0         0\n", TimensOffsets{}},
		{"monotonic        1000         0\nboottime         2000       500\n", TimensOffsets{Monotonic: 1000e9, Boottime: 2000e9 + 500}},
		{"boottime -1 999999999\nmonotonic -5 0\n", TimensOffsets{Monotonic: -5e9, Boottime: -1}},
		{"1 3 0\n7 4 0\n", TimensOffsets{Monotonic: 3e9, Boottime: 4e9}},
	} {
		got, err := ParseTimensOffsets([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c.in, diff)
		}
		// What FormatTimensOffsets writes reads back the same.
		back, err := ParseTimensOffsets([]byte(FormatTimensOffsets(got)))
		if err != nil || back != got {
			t.Errorf("%q: formatted %q reads back as %+v, %v", c.in, FormatTimensOffsets(got), back, err)
		}
	}
	for _, bad := range []string{"", "monotonic 0 0\n", "monotonic 0 0\nmonotonic 0 0\n", "monotonic 0 0\n1 0 0\n",
		"monotonic 0 0\nboottime 0 1000000000\n", "monotonic 0\nboottime 0 0\n", "realtime 0 0\nboottime 0 0\n",
		"monotonic 99999999999999 0\nboottime 0 0\n", "monotonic x 0\nboottime 0 0\n"} {
		if got, err := ParseTimensOffsets([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, got)
		}
	}
}

func FuzzParseTimensOffsets(f *testing.F) {
	addSeeds(f, "timens", "/proc/self/timens_offsets")
	f.Add([]byte("monotonic -1 999999999\nboottime 5 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseTimensOffsets(b)
		if err != nil {
			return
		}
		back, err := ParseTimensOffsets([]byte(FormatTimensOffsets(o)))
		if err != nil || back != o {
			t.Errorf("%+v formats as %q, which reads back as %+v, %v", o, FormatTimensOffsets(o), back, err)
		}
	})
}

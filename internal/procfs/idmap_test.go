package procfs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIDMaps(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []IDMap
	}{
		{"", nil},
		{"         0          0 4294967295\n", []IDMap{{0, 0, 4294967295}}},
		{"         0     100000     100000\n", []IDMap{{0, 100000, 100000}}},
		{"0 1000 1\n1 100000 65536\n", []IDMap{{0, 1000, 1}, {1, 100000, 65536}}},
	} {
		got, err := ParseIDMaps([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c.in, diff)
		}
		back, err := ParseIDMaps([]byte(FormatIDMaps(got)))
		if err != nil || !cmp.Equal(back, got) {
			t.Errorf("%q: formatted %q reads back as %v, %v", c.in, FormatIDMaps(got), back, err)
		}
	}
	for _, bad := range []string{"0 0\n", "0 0 1 1\n", "0 0 0\n", "x 0 1\n", "-1 0 1\n", "0 4294967295 2\n", "4294967296 0 1\n"} {
		if got, err := ParseIDMaps([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %v", bad, got)
		}
	}
}

func FuzzParseIDMaps(f *testing.F) {
	addSeeds(f, "uid_map", "/proc/self/uid_map")
	f.Add([]byte("0 1000 1\n1 100000 65536\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseIDMaps(b)
		if err != nil {
			return
		}
		back, err := ParseIDMaps([]byte(FormatIDMaps(m)))
		if err != nil || !cmp.Equal(back, m) {
			t.Errorf("%v formats as %q, which reads back as %v, %v", m, FormatIDMaps(m), back, err)
		}
	})
}

package procfs

import (
	"strings"
	"testing"
)

func TestParseMemAvailable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "MemTotal:       24609088 kB\nMemFree:        22278072 kB\nMemAvailable:   22871040 kB\nBuffers: 0 kB\n", want: 22871040 << 10},
		{in: "MemAvailable: 0 kB", want: 0},
		{in: "MemTotal: 1 kB\n", err: "no MemAvailable line"},
		{in: "MemAvailable: 12 MB\n", err: "not a number of kB"},
		{in: "MemAvailable: -3 kB\n", err: "MemAvailable"},
		{in: "MemAvailable: 99999999999999999999 kB\n", err: "out of range"},
	} {
		got, err := ParseMemAvailable([]byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	if n, err := MemAvailable(); err != nil || n <= 0 {
		t.Errorf("this machine's MemAvailable: %d, %v", n, err)
	}
}

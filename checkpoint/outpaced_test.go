package checkpoint

import "testing"

func TestOutpaced(t *testing.T) {
	tests := []struct {
		name   string
		copied []uint64
		stop   bool
	}{
		{"no round yet", nil, false},
		{"first round", []uint64{262144}, false},
		{"first round found nothing", []uint64{0}, true},
		{"converging", []uint64{262144, 26000, 2600}, false},
		{"writer as fast as the copy", []uint64{262144, 26000, 26000}, true},
		{"writer faster than the copy", []uint64{262144, 26000, 30000}, true},
		{"nothing written since", []uint64{262144, 0}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rounds []PreCopyRound
			for _, c := range tt.copied {
				rounds = append(rounds, PreCopyRound{PagesCopied: c})
			}
			if got := outpaced(rounds); (got != "") != tt.stop {
				t.Errorf("outpaced(%v) = %q, want a stop: %v", tt.copied, got, tt.stop)
			}
		})
	}
}

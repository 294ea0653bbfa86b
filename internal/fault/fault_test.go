//go:build faultinject

package fault

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestNthEventOfAPhaseFailsOnce(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		want  []error // of the events below, in order
		hit   *Hit
	}{
		{"second call of b", Fault{Site: SiteCall, Phase: "b", N: 2, Err: unix.EIO},
			[]error{nil, nil, nil, unix.EIO, nil, nil}, &Hit{Point{SiteCall, "b"}, 2, "c4", 0}},
		{"third call of any phase", Fault{Site: SiteCall, N: 3, Err: unix.ENOMEM},
			[]error{nil, nil, unix.ENOMEM, nil, nil, nil}, &Hit{Point{SiteCall, "b"}, 1, "c3", 0}},
		{"past the last call", Fault{Site: SiteCall, Phase: "a", N: 4, Err: unix.EIO},
			[]error{nil, nil, nil, nil, nil, nil}, nil},
		{"another site", Fault{Site: SiteInjected, N: 1, Err: unix.EIO},
			[]error{nil, nil, nil, nil, nil, nil}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Arm(tc.fault)
			defer Reset()
			var got []error
			for i, phase := range []string{"a", "a", "b", "b", "b", "a"} {
				Phase(phase)
				got = append(got, Call("c"+string(rune('1'+i))))
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) && errors.Is(b, a) })); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.hit, Fired()); diff != "" {
				t.Errorf("fired (-want +got):\n%s", diff)
			}
			want := map[Point]int{{SiteCall, "a"}: 3, {SiteCall, "b"}: 3, {SiteCall, ""}: 6}
			if diff := cmp.Diff(want, Counts()); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuspendedEventsNeitherCountNorFail(t *testing.T) {
	Arm(Fault{Site: SiteInjected, N: 1, Err: unix.EIO})
	defer Reset()
	resume := Suspend()
	if err := Injected(9); err != nil {
		t.Fatalf("a suspended call failed: %v", err)
	}
	resume()
	if err := Injected(9); !errors.Is(err, unix.EIO) {
		t.Fatalf("the first call after the suspension: %v, want EIO", err)
	}
}

func TestShortWrite(t *testing.T) {
	tests := []struct {
		fault   Fault
		n       int
		wantErr error
	}{
		{Fault{Site: SiteWrite, N: 1, Err: unix.ENOSPC}, 0, unix.ENOSPC},
		{Fault{Site: SiteWrite, N: 1, Err: unix.ENOSPC, Short: true}, 50, unix.ENOSPC},
		{Fault{Site: SiteWrite, N: 1, Short: true}, 50, nil},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			Arm(tc.fault)
			defer Reset()
			n, err := Write(100)
			if n != tc.n || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Write(100) = %d, %v; want %d, %v", n, err, tc.n, tc.wantErr)
			}
			if n, err := Write(100); n != 100 || err != nil {
				t.Errorf("the write after = %d, %v; want 100, nil", n, err)
			}
		})
	}
}

func TestEachArmedFaultFiresOnItsOwn(t *testing.T) {
	Arm(Fault{Site: SiteCall, Phase: "b", N: 1, Err: unix.EIO}, Fault{Site: SiteCall, Phase: "a", N: 2, Err: unix.ENOSPC})
	defer Reset()
	var got []error
	for _, phase := range []string{"a", "a", "b", "b"} {
		Phase(phase)
		got = append(got, Call("c"))
	}
	want := []error{nil, unix.ENOSPC, unix.EIO, nil}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) && errors.Is(b, a) })); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantHits := []Hit{{Point{SiteCall, "a"}, 2, "c", 1}, {Point{SiteCall, "b"}, 1, "c", 0}}
	if diff := cmp.Diff(wantHits, Hits()); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
}

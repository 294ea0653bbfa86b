package checkpoint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
	"github.com/crsub/crsub/internal/files"
)

// Fds are grouped by open file description: separate opens of one file
// are separate descriptions, dup'd fds share theirs, whatever the order
// they come in.
func TestDescriptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var nums []int
	opened := map[int]int{} // fd -> the open it came from
	for open := range 40 {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		nums = append(nums, int(f.Fd()))
		opened[int(f.Fd())] = open
		for range 2 {
			d, err := unix.Dup(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(d) })
			nums = append(nums, d)
			opened[d] = open
		}
	}
	// An order that is not the opening order.
	for i := range nums {
		j := (i * 7) % len(nums)
		nums[i], nums[j] = nums[j], nums[i]
	}
	d := descriptions{}
	refOf := map[int]ckpt.Objref{} // open -> its description's objref
	got := map[int]ckpt.Objref{}   // fd -> objref found or given
	next := ckpt.Objref(1)
	for _, n := range nums {
		fd := &files.Fd{Pid: os.Getpid(), Num: n}
		if err := unix.Fstat(n, &fd.Stat); err != nil {
			t.Fatal(err)
		}
		ref, at, err := d.find(fd)
		if err != nil {
			t.Fatal(err)
		}
		if ref == 0 {
			ref = next
			next++
			d.insert(at, files.Dumped{Fd: fd, Ref: ref})
		}
		got[n] = ref
		if _, ok := refOf[opened[n]]; !ok {
			refOf[opened[n]] = ref
		}
	}
	want := map[int]ckpt.Objref{}
	for _, n := range nums {
		want[n] = refOf[opened[n]]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objrefs by fd (-want +got):\n%s", diff)
	}
	if next-1 != 40 {
		t.Errorf("%d descriptions found, want 40", next-1)
	}
}

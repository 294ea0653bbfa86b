package files

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/ckpt"
)

// fakeSparse answers SEEK_DATA and SEEK_HOLE for a file of size bytes
// whose data are the extents given.
type ext = ckpt.Extent

func x(off, n int64) ext { return ext{Off: off, Len: n} }

func fakeSparse(size int64, data []ext, noSeekData bool) func(int64, int) (int64, error) {
	return func(off int64, whence int) (int64, error) {
		if noSeekData {
			return 0, unix.EINVAL
		}
		if off >= size {
			return 0, unix.ENXIO
		}
		for _, e := range data {
			if off < e.Off+e.Len {
				if whence == unix.SEEK_DATA {
					return max(off, e.Off), nil
				}
				if off >= e.Off {
					return e.Off + e.Len, nil
				}
				return off, nil
			}
		}
		if whence == unix.SEEK_DATA {
			return 0, unix.ENXIO
		}
		return size, nil // the implicit hole at the end
	}
}

func TestDataExtents(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size       int64
		data       []ckpt.Extent
		noSeekData bool
		want       []ckpt.Extent
	}{
		{name: "empty", size: 0},
		{name: "all holes", size: 1 << 30},
		{name: "all data", size: 8192, data: []ext{x(0, 8192)}, want: []ext{x(0, 8192)}},
		{name: "hole in the middle", size: 3 * 4096, data: []ext{x(0, 4096), x(8192, 4096)}, want: []ext{x(0, 4096), x(8192, 4096)}},
		{name: "head and tail holes", size: 5 * 4096, data: []ext{x(4096, 4096), x(3*4096, 4096)}, want: []ext{x(4096, 4096), x(3*4096, 4096)}},
		{name: "large, mostly holes", size: 1<<30 + 8192, data: []ext{x(4096, 4096), x(1<<30, 4096)}, want: []ext{x(4096, 4096), x(1<<30, 4096)}},
		{name: "data past the size is cut", size: 6000, data: []ext{x(4096, 4096)}, want: []ext{x(4096, 1904)}},
		{name: "no SEEK_DATA", size: 10000, noSeekData: true, want: []ext{x(0, 10000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dataExtents(fakeSparse(tc.size, tc.data, tc.noSeekData), tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("extents (-want +got):\n%s", diff)
			}
		})
	}
}

package files

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestQuietTermios(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name             string
		oflag, lflag     uint32
		wantOut, wantLoc uint32
	}{
		{"a shell's terminal: echo and output processing off, canonical kept",
			unix.OPOST | unix.ONLCR, unix.ICANON | unix.ECHO | unix.ECHOE | unix.ECHONL | unix.ISIG,
			unix.ONLCR, unix.ICANON | unix.ECHOE | unix.ISIG},
		{"raw already", 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := make([]byte, termios2Size)
			le.PutUint32(in[0:], unix.ICRNL)
			le.PutUint32(in[4:], tc.oflag)
			le.PutUint32(in[12:], tc.lflag)
			in[17+unix.VEOF] = 4
			q := quietTermios(in)
			want := append([]byte(nil), in...)
			le.PutUint32(want[4:], tc.wantOut)
			le.PutUint32(want[12:], tc.wantLoc)
			if d := cmp.Diff(want, q); d != "" {
				t.Errorf("quiet termios (-want +got):\n%s", d)
			}
			if le.Uint32(in[4:]) != tc.oflag {
				t.Errorf("the image's termios was changed")
			}
		})
	}
}

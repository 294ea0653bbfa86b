package preserve_test

import (
	"fmt"

	"github.com/crsub/crsub/preserve"
	"golang.org/x/sys/unix"
)

// Marking an fd is an F_SETFD with one more bit; the mark lapses when the
// number stops referring to the marked file.
func ExampleFcntl() {
	fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := preserve.Fcntl(fd, unix.F_SETFD, unix.FD_CLOEXEC|preserve.FD_PRESERVE); err != nil {
		fmt.Println(err)
		return
	}
	flags, _ := preserve.Fcntl(fd, unix.F_GETFD, 0)
	fmt.Println("cloexec:", flags&unix.FD_CLOEXEC != 0, "preserve:", flags&preserve.FD_PRESERVE != 0)

	preserve.Clear(fd) // before close, so the held duplicate goes too
	unix.Close(fd)
	fmt.Println("after close:", preserve.IsSet(fd))
	// Output:
	// cloexec: true preserve: true
	// after close: false
}

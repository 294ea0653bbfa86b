package substitute_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/crsub/crsub/preserve"
	"github.com/crsub/crsub/substitute"
	"golang.org/x/sys/unix"
)

// A restarted program used fd 100 for its log, which was rotated away since
// the checkpoint; give it a fresh file at the same number, opened the way the
// image says the old one was (write-only, append).
func ExampleInstall() {
	dir, _ := os.MkdirTemp("", "crsub-example")
	defer os.RemoveAll(dir)
	log := filepath.Join(dir, "app.log")

	src, err := substitute.Parse("file:" + log + ",create,mode=0640")
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := substitute.DefaultInstallOptions()
	opts.Image = map[int]substitute.OpenOptions{100: {Flags: unix.O_WRONLY | unix.O_APPEND}}
	in, err := substitute.Install(map[int]substitute.Source{100: src}, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer in.Undo()
	for _, p := range in.Placed() {
		fmt.Printf("fd %d: %s, write-only %v, preserved %v\n", p.FD, p.Kind,
			p.Flags&unix.O_ACCMODE == unix.O_WRONLY, preserve.IsSet(p.FD))
	}
	unix.Write(100, []byte("after restart\n"))
	b, _ := os.ReadFile(log)
	fmt.Printf("%s", b)
	// Output:
	// fd 100: file, write-only true, preserved true
	// after restart
}

package main

import (
	"fmt"
	"os"
)

// openInPlace opens path for writing when it names something other than a
// regular file — /dev/null, a FIFO, a terminal — which must be written to
// where it is: writing beside it and renaming over it would replace the
// device with a file. It returns nil when path is a regular file or does not
// exist yet.
func openInPlace(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil || st.Mode().IsRegular() {
		return nil, nil
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	return os.OpenFile(path, os.O_WRONLY, 0)
}

package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procRoot is a constant, not a variable, so the package has no mutable
// state; tests feed parsers bytes instead of pointing the package elsewhere.
const procRoot = "/proc"

func pidPath(pid int, name string) string {
	return procRoot + "/" + strconv.Itoa(pid) + "/" + name
}

// maxLine bounds a single /proc line. Paths are at most PATH_MAX (4096) bytes,
// but escaping can quadruple them, so leave ample room.
const maxLine = 1 << 20

func newLineScanner(r io.Reader) *bufio.Scanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), maxLine)
	s.Split(scanLF)
	return s
}

// scanLF splits at '\n' only. bufio.ScanLines would also drop a '\r' before
// it, and the kernel prints a file name ending in '\r' unescaped.
func scanLF(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// readProcFile reads a whole /proc file and wraps errors with the package
// prefix; the *PathError inside still names the file and keeps
// errors.Is(err, fs.ErrNotExist) working for "process went away".
func readProcFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// fileError prefixes err (from an unexported parser) with the file it came
// from, giving messages like "/proc/1/stat: field 3 (state): ...".
func fileError(file string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", file, err)
}

func parseUint(s string, base, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, base, bits)
	if err != nil {
		// strconv's message repeats the input; keep only the reason so the
		// caller's context (file, field) stays at the front.
		if ne, ok := err.(*strconv.NumError); ok {
			return 0, fmt.Errorf("%q: %w", s, ne.Err)
		}
		return 0, err
	}
	return v, nil
}

func parseInt(s string, base, bits int) (int64, error) {
	v, err := strconv.ParseInt(s, base, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok {
			return 0, fmt.Errorf("%q: %w", s, ne.Err)
		}
		return 0, err
	}
	return v, nil
}

// parseIntList parses whitespace-separated decimal ints (task/children,
// NSpid and friends).
func parseIntList(s string) ([]int, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, nil
	}
	out := make([]int, 0, len(fields))
	for i, f := range fields {
		v, err := parseInt(f, 10, strconv.IntSize)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		out = append(out, int(v))
	}
	return out, nil
}

// kernelDev converts a dev_t as the kernel stores it internally (major in the
// top 12 bits, minor in the low 20), which is what fdinfo's "sdev:" fields
// print, to the userspace encoding used by stat(2) and unix.Mkdev.
func kernelDev(sdev uint64) uint64 {
	return unix.Mkdev(uint32(sdev>>20), uint32(sdev&0xfffff))
}

// parseMajorMinor parses "maj:min" with the given base (hex in maps, decimal
// in mountinfo) into a unix.Mkdev device number.
func parseMajorMinor(s string, base int) (uint64, error) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%q: want major:minor", s)
	}
	ma, err := parseUint(maj, base, 32)
	if err != nil {
		return 0, fmt.Errorf("major: %w", err)
	}
	mi, err := parseUint(min, base, 32)
	if err != nil {
		return 0, fmt.Errorf("minor: %w", err)
	}
	return unix.Mkdev(uint32(ma), uint32(mi)), nil
}

// parseLines parses r one line at a time with parse, naming the line of
// the first error.
func parseLines[T any](r io.Reader, parse func(string) (T, error)) ([]T, error) {
	var out []T
	s := newLineScanner(r)
	for n := 1; s.Scan(); n++ {
		v, err := parse(s.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, v)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tracefsRoots are where tracefs is found: its own mount point, and the
// older place under debugfs.
var tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// TracepointID returns the id of a kernel tracepoint ("mmap_lock/
// mmap_lock_acquire_returned"), which perf events name it by. It is read
// from tracefs where it is mounted, or else from a detached mount of
// tracefs made for the moment (nothing mounted in the caller's namespace).
func TracepointID(name string) (uint64, error) {
	file := filepath.Join("events", name, "id")
	var first error
	for _, root := range tracefsRoots {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err == nil {
			return parseTracepointID(name, b)
		}
		if first == nil {
			first = err
		}
	}
	tracefs, err := NewMount("tracefs", nil, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return 0, fmt.Errorf("tracepoint %s: %w (and tracefs is not mounted: %w)", name, err, first)
	}
	defer tracefs.Close()
	b, err := readAt(tracefs.Int(), file)
	if err != nil {
		return 0, fmt.Errorf("tracepoint %s: %w", name, err)
	}
	return parseTracepointID(name, b)
}

func parseTracepointID(name string, b []byte) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tracepoint %s: id %q: %w", name, b, err)
	}
	return id, nil
}

// readAt reads the small file at path below directory dirfd.
func readAt(dirfd int, path string) ([]byte, error) {
	fd, err := retry(func() (int, error) { return unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: path, Err: err}
	}
	f := NewFD(fd).File(path)
	defer f.Close()
	return io.ReadAll(f)
}

// OpenTracepointCounter counts the times thread tid, and every thread and
// process it creates from now on, passes tracepoint id with a record that
// matches filter (the tracefs filter syntax, "" for all). The count starts
// once the filter is in place.
func OpenTracepointCounter(id uint64, filter string, tid int) (*FD, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_TRACEPOINT,
		Config: id,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits:   unix.PerfBitInherit | unix.PerfBitDisabled,
	}
	raw, err := retry(func() (int, error) { return unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC) })
	if err != nil {
		return nil, os.NewSyscallError("perf_event_open", err)
	}
	fd := NewFD(raw)
	if filter != "" {
		p, err := unix.BytePtrFromString(filter)
		if err != nil {
			fd.Close()
			return nil, err
		}
		if _, err := ioctlPtr(raw, unix.PERF_EVENT_IOC_SET_FILTER, unsafe.Pointer(p)); err != nil {
			fd.Close()
			return nil, os.NewSyscallError("ioctl(PERF_EVENT_IOC_SET_FILTER)", err)
		}
	}
	if _, err := retry(func() (int, error) { return 0, unix.IoctlSetInt(raw, unix.PERF_EVENT_IOC_ENABLE, 0) }); err != nil {
		fd.Close()
		return nil, os.NewSyscallError("ioctl(PERF_EVENT_IOC_ENABLE)", err)
	}
	return fd, nil
}

// HoldTracepoint keeps tracepoint id registered for perf events while the
// returned fd is open (a disabled event of the calling thread, counting
// nothing): the first event on a tracepoint registers it and the last one
// closed unregisters it, 7-10 ms and ~20 ms here, which counters opened
// and closed meanwhile (OpenTracepointCounter) then do not pay.
func HoldTracepoint(id uint64) (*FD, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_TRACEPOINT,
		Config: id,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits:   unix.PerfBitDisabled,
	}
	raw, err := retry(func() (int, error) { return unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC) })
	if err != nil {
		return nil, os.NewSyscallError("perf_event_open", err)
	}
	return NewFD(raw), nil
}

// ReadCounter returns the count of a counter OpenTracepointCounter made,
// including the threads and processes created since.
func ReadCounter(fd *FD) (uint64, error) {
	var b [8]byte
	n, err := retry(func() (int, error) { return unix.Read(fd.Int(), b[:]) })
	if err != nil {
		return 0, os.NewSyscallError("read(perf event)", err)
	}
	if n != len(b) {
		return 0, errors.New("read(perf event): short read")
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
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
// mmap_lock_acquire_returned"), which perf events name it by. It needs
// tracefs mounted.
func TracepointID(name string) (uint64, error) {
	var first error
	for _, root := range tracefsRoots {
		b, err := os.ReadFile(filepath.Join(root, "events", name, "id"))
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("tracepoint %s: id %q: %w", name, b, err)
		}
		return id, nil
	}
	return 0, fmt.Errorf("tracepoint %s: %w", name, first)
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

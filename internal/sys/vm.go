package sys

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crsub/crsub/internal/fault"
)

// iovMax is IOV_MAX (UIO_MAXIOV): the most iovecs one call accepts, on
// either side.
const iovMax = 1024

// ProcessVMReadv copies memory of process pid, described by remote, into
// the local buffers, in order, until either side is used up. It batches at
// IOV_MAX entries per call and resumes after partial transfers, so it returns
// the total bytes copied; when the kernel stops early (typically at an
// unmapped page), the error tells why and n says how far it got.
func ProcessVMReadv(pid int, local [][]byte, remote []unix.RemoteIovec) (n int, err error) {
	return processVM("process_vm_readv", unix.ProcessVMReadv, pid, local, remote)
}

// ProcessVMWritev is ProcessVMReadv in the other direction: it copies the
// local buffers into the memory of pid described by remote.
func ProcessVMWritev(pid int, local [][]byte, remote []unix.RemoteIovec) (n int, err error) {
	return processVM("process_vm_writev", unix.ProcessVMWritev, pid, local, remote)
}

type vmCall func(pid int, local []unix.Iovec, remote []unix.RemoteIovec, flags uint) (int, error)

func processVM(name string, call vmCall, pid int, local [][]byte, remote []unix.RemoteIovec) (int, error) {
	for i, r := range remote {
		if r.Len < 0 {
			return 0, fmt.Errorf("%s: remote iovec %d has negative length %d", name, i, r.Len)
		}
	}
	liov := make([]unix.Iovec, 0, min(iovMax, len(local)))
	riov := make([]unix.RemoteIovec, 0, min(iovMax, len(remote)))
	// (li, lo) and (ri, ro) are the next unused byte: entry index and offset.
	li, lo, ri, ro := 0, 0, 0, 0
	total := 0
	for {
		liov, riov = liov[:0], riov[:0]
		lsum, rsum := 0, 0
		for i, o := li, lo; i < len(local) && len(liov) < iovMax; i, o = i+1, 0 {
			b := local[i][o:]
			if len(b) == 0 {
				continue
			}
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			liov = append(liov, v)
			lsum += len(b)
		}
		for i, o := ri, ro; i < len(remote) && len(riov) < iovMax; i, o = i+1, 0 {
			r := remote[i]
			if r.Len == o {
				continue
			}
			riov = append(riov, unix.RemoteIovec{Base: r.Base + uintptr(o), Len: r.Len - o})
			rsum += r.Len - o
		}
		if lsum == 0 || rsum == 0 {
			return total, nil
		}
		n, err := retry(func() (int, error) {
			if err := fault.Call(name); err != nil {
				return 0, err
			}
			return call(pid, liov, riov, 0)
		})
		if err != nil {
			return total, fmt.Errorf("pid %d, after %d bytes: %w", pid, total, os.NewSyscallError(name, err))
		}
		if n == 0 {
			// Cannot happen with non-empty iovecs, but looping would spin.
			return total, fmt.Errorf("%s: pid %d, after %d bytes: no progress", name, pid, total)
		}
		total += n
		li, lo = advance(len(local), func(i int) int { return len(local[i]) }, li, lo, n)
		ri, ro = advance(len(remote), func(i int) int { return remote[i].Len }, ri, ro, n)
		// A short count means the kernel hit a bad remote or local page; the
		// next call starts exactly there and reports the error itself.
	}
}

// advance moves cursor (i, o) over count entries of the given lengths by n bytes.
func advance(count int, length func(int) int, i, o, n int) (int, int) {
	for n > 0 && i < count {
		rem := length(i) - o
		if n < rem {
			return i, o + n
		}
		n -= rem
		i, o = i+1, 0
	}
	return i, o
}

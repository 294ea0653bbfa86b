package checkpoint

import (
	"unsafe"

	"github.com/crsub/crsub/internal/ptrace"
)

// regsToWords flattens struct user_regs_struct into the image's word list.
func regsToWords(r *ptrace.Regs) []uint64 {
	n := unsafe.Sizeof(*r) / 8
	words := unsafe.Slice((*uint64)(unsafe.Pointer(r)), n)
	return append([]uint64(nil), words...)
}

func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }
